"""Window/level presets. CT presets are in Hounsfield units and offered only for CT with a rescale."""

CT_PRESETS: dict[str, tuple[float, float]] = {  # name: (centre, width)
    "brain": (40, 80),
    "subdural": (75, 200),
    "stroke": (40, 40),
    "soft tissue": (40, 400),
    "liver": (90, 150),
    "mediastinum": (50, 350),
    "lung": (-600, 1500),
    "bone": (500, 2000),
}
CT_DEFAULT = "soft tissue"
