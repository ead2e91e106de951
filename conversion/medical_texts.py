"""A small bilingual (English / Chinese) medical text set: it trains the tiny test tokenizers and is the
text on which verification compares tokenizations."""

from inference import prompt

SENTENCES = [
    "The chest X-ray shows a right lower lobe consolidation consistent with pneumonia.",
    "Axial CT of the head without contrast: no acute intracranial haemorrhage.",
    "MRI T2-weighted images demonstrate a hyperintense lesion in the left temporal lobe.",
    "There is a 12 mm nodule in the right upper lobe; follow-up CT in 3 months is advised.",
    "Ultrasound of the liver reveals diffuse steatosis without focal lesions.",
    "Histopathology: H&E stain at 40x shows glandular structures with nuclear atypia.",
    "The patient is a 64-year-old male with a history of hypertension and diabetes mellitus.",
    "Which organ is abnormal in this image? Answer with the option's letter from the given choices directly.",
    "What modality was used to take this image?",
    "Is there evidence of a pleural effusion?",
    "The cardiothoracic ratio is 0.55, suggesting mild cardiomegaly.",
    "Fracture of the distal radius with dorsal angulation (Colles fracture).",
    "胸部X光片显示右下肺叶实变，符合肺炎表现。",
    "头颅CT平扫：未见急性颅内出血。",
    "磁共振T2加权像显示左侧颞叶高信号病灶。",
    "右上肺可见一枚12毫米结节，建议3个月后复查CT。",
    "肝脏超声提示弥漫性脂肪肝，未见占位性病变。",
    "病理切片（HE染色，40倍）显示腺体结构及细胞核异型性。",
    "患者男性，64岁，有高血压和糖尿病病史。",
    "这张图像中哪个器官异常？请直接回答选项字母。",
    "这张图像是用什么成像方式拍摄的？",
    "是否存在胸腔积液？",
    "心胸比为0.55，提示轻度心脏增大。",
    "桡骨远端骨折伴背侧成角（Colles骨折）。",
    # Two turns in the prompt format, as the model reads them.
    prompt.user_turn("Describe the findings.", 1) + prompt.assistant_turn("The image shows a normal chest radiograph."),
    prompt.render([prompt.Turn("请描述这张图像的主要发现。")]),
]

# Text the tokenizers never saw in training: rare characters, emoji, digits, mixed scripts, whitespace.
UNSEEN = [
    "SpO2 98%, HR 72 bpm, BP 128/84 mmHg — stable 🙂",
    "CT值约为45 HU；ΔT = 0.3 s；µg/kg；Ⅱ度房室传导阻滞",
    "  leading spaces, tabs\tand\nnew lines\n\n",
    "1234567890 3.14159 1e-6 ½",
    "Gd-DTPA增强扫描 (T1WI) 显示环形强化 ring enhancement",
]

ALL = SENTENCES + UNSEEN
