"""The eight PBC classes: one order, used by every stage (ids are indexes into CLASS_NAMES)."""

CLASS_NAMES: tuple[str, ...] = (
    "basophil",
    "eosinophil",
    "erythroblast",
    "ig",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
)
CLASS_ID: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
NUM_CLASSES = len(CLASS_NAMES)

# red cells: a detector (and a real-field dataset) may know them; they are none of the eight
RBC = "rbc"
RBC_ID = NUM_CLASSES  # class_id 8 in cells.csv and real-field datasets
