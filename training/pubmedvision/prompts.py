"""What the multimodal model is asked, and how its reply is checked.

The model sees the images *and* the caption and inline mentions ("unblinded"), so it can correct a noisy
caption with what it sees and use the caption's facts that the image alone would not give. It replies with one
JSON object: a description of the images (the alignment answer) and a question and answer from one role's
point of view (the instruction sample).
"""

from __future__ import annotations

import hashlib
import json
import re

PROMPT_VERSION = "pubmedvision-reformat-1"  # part of the reply cache key: change it when the prompt changes

# Alignment samples pair one of these fixed questions with the generated description.
ALIGNMENT_QUESTIONS = (
    "Describe this medical image in detail.",
    "What does this image show?",
    "Please give a detailed description of this image.",
    "What can you observe in this image?",
    "Provide a thorough description of the findings in this image.",
    "Explain what is shown in this picture.",
    "Describe the content of this image.",
    "What are the key features visible in this image?",
    "Could you describe this image for me?",
    "Summarize the visual content of this image.",
    "Walk me through what this image depicts.",
)

# Instruction samples are asked from one of these points of view, so that questions vary in depth and tone.
ROLE_SCENARIOS = (
    ("radiologist", "a radiologist or pathologist discussing the findings with a colleague"),
    ("clinician", "a clinician who needs the image's findings to decide on the next step for a patient"),
    ("student", "a medical student learning to read this kind of image"),
    ("patient", "a patient with no medical training who was shown this image and wants to understand it"),
    ("researcher", "a biomedical researcher interested in what the image demonstrates"),
    ("assistant", "a user asking an AI medical assistant a specific question that needs the image to answer"),
)

REQUIRED_FIELDS = ("description", "question", "answer")
OPTIONAL_FIELDS = ("modality", "body_part")

SYSTEM_PROMPT = (
    "You turn figures from medical publications into training data for a medical vision-language model. "
    "You are shown the figure's images together with its caption and the sentences of the article that "
    "mention it. Use the caption and mentions to be accurate, but write as someone looking at the images: "
    "never mention the caption, the article, figure numbers or the authors, and state nothing that is neither "
    "visible nor supported by the text. Reply with a single JSON object and nothing else."
)

_REPLY_SPEC = (
    'Reply with a JSON object with these string fields:\n'
    '"modality": the imaging modality (e.g. "CT", "MRI", "X-ray", "Ultrasound", "Microscopy", '
    '"Endoscopy", "Photograph"),\n'
    '"body_part": the body part or organ shown (e.g. "Chest", "Brain", "Liver", "Skin"),\n'
    '"description": a detailed, accurate description of the image{s}: what is shown, the notable findings and '
    "their location, in flowing prose,\n"
    '"question": {question_brief},\n'
    '"answer": a correct, helpful answer to that question, grounded in the image{s}.'
)


def pick(record_id: str, seed: int, salt: str, n: int) -> int:
    """A choice among n that depends only on the record, so reruns and other machines choose the same."""
    digest = hashlib.sha256(f"{seed}:{salt}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def alignment_question(record_id: str, seed: int) -> str:
    return ALIGNMENT_QUESTIONS[pick(record_id, seed, "alignment", len(ALIGNMENT_QUESTIONS))]


def role_scenario(record_id: str, seed: int) -> tuple[str, str]:
    return ROLE_SCENARIOS[pick(record_id, seed, "role", len(ROLE_SCENARIOS))]


def user_text(caption: str, mentions: list[str], n_images: int, role: str) -> str:
    s = "s" if n_images > 1 else ""
    parts = [f"The figure has {n_images} image{s}, attached above in order." if n_images > 1 else
             "The figure's image is attached above.", "", "Caption:", caption.strip()]
    if mentions:
        parts += ["", "Mentions in the article:"] + [f"- {m.strip()}" for m in mentions]
    question_brief = (f"a question about the image{s} that {role} would ask; it must need the image{s} "
                      "to be answered and must not reveal the answer")
    parts += ["", _REPLY_SPEC.format(s=s, question_brief=question_brief)]
    return "\n".join(parts)


def messages(caption: str, mentions: list[str], image_urls: list[str], role: str,
             detail: str | None = None) -> list[dict]:
    """OpenAI-style chat messages: the images first, then the caption, mentions and the reply format."""
    content: list[dict] = []
    for url in image_urls:
        image_url = {"url": url}
        if detail:
            image_url["detail"] = detail
        content.append({"type": "image_url", "image_url": image_url})
    content.append({"type": "text", "text": user_text(caption, mentions, len(image_urls), role)})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


def fix_request(error: str) -> str:
    """What the model is told after a reply that could not be used."""
    return (f"Your reply could not be used: {error}. Reply again with only the JSON object, with the string "
            f"fields {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)}.")


class ReplyError(ValueError):
    """The reply is not the JSON object asked for; the message says what is wrong, for the re-ask."""


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_reply(text: str) -> dict:
    """The reply's fields, stripped; raises ReplyError naming the problem."""
    text = (text or "").strip()
    fenced = _FENCE.match(text)
    if fenced:  # many models wrap JSON in a code fence even when told not to
        text = fenced.group(1)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise ReplyError("the reply is not a JSON object") from None
        try:
            obj = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ReplyError(f"the reply is not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ReplyError("the reply is JSON but not an object")
    missing = [k for k in REQUIRED_FIELDS if not isinstance(obj.get(k), str) or not obj[k].strip()]
    if missing:
        raise ReplyError(f"the field{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"{'are' if len(missing) > 1 else 'is'} missing or empty")
    reply = {k: obj[k].strip() for k in REQUIRED_FIELDS}
    for k in OPTIONAL_FIELDS:
        value = obj.get(k)
        reply[k] = value.strip() if isinstance(value, str) else ""
    return reply
