"""ScanNet200 category ids: the label half of ScanNet's ``label_id * 1000 + instance`` GT encoding.

Source: ScanNet's benchmark constants, ``BenchmarkScripts/ScanNet200/scannet200_constants.py`` in the
public ScanNet/ScanNet repository (``VALID_CLASS_IDS_200``, ``CLASS_LABELS_200`` and
``VALID_PANOPTIC_IDS``); Mask3D and OpenMask3D ship identical copies. The ids are raw ScanNet category ids
(``scannetv2-labels.combined.tsv``, column ``id``), NOT positions 0..199: wall is 1, chair 2, floor 3.
The instance benchmark (and Open3DIS' class-agnostic protocol) uses 198 classes: these 200 without the
two non-object categories wall and floor.
"""

from __future__ import annotations

# fmt: off
VALID_CLASS_IDS_200: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 24, 26, 27, 28, 29, 31, 32,
    33, 34, 35, 36, 38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51, 52, 54, 55, 56, 57, 58, 59, 62, 63,
    64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 82, 84, 86, 87, 88, 89, 90, 93, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 110, 112, 115, 116, 118, 120, 121, 122, 125,
    128, 130, 131, 132, 134, 136, 138, 139, 140, 141, 145, 148, 154, 155, 156, 157, 159, 161, 163, 165,
    166, 168, 169, 170, 177, 180, 185, 188, 191, 193, 195, 202, 208, 213, 214, 221, 229, 230, 232, 233,
    242, 250, 261, 264, 276, 283, 286, 300, 304, 312, 323, 325, 331, 342, 356, 370, 392, 395, 399, 408,
    417, 488, 540, 562, 570, 572, 581, 609, 748, 776, 1156, 1163, 1164, 1165, 1166, 1167, 1168, 1169, 1170,
    1171, 1172, 1173, 1174, 1175, 1176, 1178, 1179, 1180, 1181, 1182, 1183, 1184, 1185, 1186, 1187, 1188,
    1189, 1190, 1191,
)

CLASS_LABELS_200: tuple[str, ...] = (
    "wall", "chair", "floor", "table", "door", "couch", "cabinet", "shelf", "desk", "office chair", "bed",
    "pillow", "sink", "picture", "window", "toilet", "bookshelf", "monitor", "curtain", "book", "armchair",
    "coffee table", "box", "refrigerator", "lamp", "kitchen cabinet", "towel", "clothes", "tv",
    "nightstand", "counter", "dresser", "stool", "cushion", "plant", "ceiling", "bathtub", "end table",
    "dining table", "keyboard", "bag", "backpack", "toilet paper", "printer", "tv stand", "whiteboard",
    "blanket", "shower curtain", "trash can", "closet", "stairs", "microwave", "stove", "shoe",
    "computer tower", "bottle", "bin", "ottoman", "bench", "board", "washing machine", "mirror", "copier",
    "basket", "sofa chair", "file cabinet", "fan", "laptop", "shower", "paper", "person",
    "paper towel dispenser", "oven", "blinds", "rack", "plate", "blackboard", "piano", "suitcase", "rail",
    "radiator", "recycling bin", "container", "wardrobe", "soap dispenser", "telephone", "bucket", "clock",
    "stand", "light", "laundry basket", "pipe", "clothes dryer", "guitar", "toilet paper holder", "seat",
    "speaker", "column", "bicycle", "ladder", "bathroom stall", "shower wall", "cup", "jacket",
    "storage bin", "coffee maker", "dishwasher", "paper towel roll", "machine", "mat", "windowsill", "bar",
    "toaster", "bulletin board", "ironing board", "fireplace", "soap dish", "kitchen counter", "doorframe",
    "toilet paper dispenser", "mini fridge", "fire extinguisher", "ball", "hat", "shower curtain rod",
    "water cooler", "paper cutter", "tray", "shower door", "pillar", "ledge", "toaster oven", "mouse",
    "toilet seat cover dispenser", "furniture", "cart", "storage container", "scale", "tissue box",
    "light switch", "crate", "power outlet", "decoration", "sign", "projector", "closet door",
    "vacuum cleaner", "candle", "plunger", "stuffed animal", "headphones", "dish rack", "broom",
    "guitar case", "range hood", "dustpan", "hair dryer", "water bottle", "handicap bar", "purse", "vent",
    "shower floor", "water pitcher", "mailbox", "bowl", "paper bag", "alarm clock", "music stand",
    "projector screen", "divider", "laundry detergent", "bathroom counter", "object", "bathroom vanity",
    "closet wall", "laundry hamper", "bathroom stall door", "ceiling light", "trash bin", "dumbbell",
    "stair rail", "tube", "bathroom cabinet", "cd case", "closet rod", "coffee kettle", "structure",
    "shower head", "keyboard piano", "case of water bottles", "coat rack", "storage organizer",
    "folded chair", "fire alarm", "power strip", "calendar", "poster", "potted plant", "luggage",
    "mattress",
)
# fmt: on

#: The non-object categories the instance benchmark leaves out (``VALID_PANOPTIC_IDS``): wall, floor.
WALL_ID = 1
FLOOR_ID = 3
NON_OBJECT_IDS: tuple[int, ...] = (WALL_ID, FLOOR_ID)

#: The 198 instance classes of the ScanNet200 instance benchmark.
INSTANCE_CLASS_IDS_198: tuple[int, ...] = tuple(i for i in VALID_CLASS_IDS_200 if i not in NON_OBJECT_IDS)

ID_TO_LABEL_200: dict[int, str] = dict(zip(VALID_CLASS_IDS_200, CLASS_LABELS_200))
