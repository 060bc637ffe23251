"""Paper presets (docs/protocol.md, Stimuli): InceptionV1 branch layout, unit lists of Experiments I and II.

Pure data and small helpers; no torch import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Branch order of an Inception block's pre-ReLU concatenation.
BRANCHES: tuple[str, ...] = ("1x1", "3x3", "5x5", "pool")

#: lucent module name suffix of each branch's last (pre-ReLU) conv.
BRANCH_MODULE_SUFFIX: dict[str, str] = {
    "1x1": "1x1_pre_relu_conv",
    "3x3": "3x3_pre_relu_conv",
    "5x5": "5x5_pre_relu_conv",
    "pool": "pool_reduce_pre_relu_conv",
}

#: Channels per branch (1x1, 3x3, 5x5, pool) of each InceptionV1 mixed layer (docs/protocol.md, Stimuli).
INCEPTION_BRANCH_SIZES: dict[str, tuple[int, int, int, int]] = {
    "mixed3a": (64, 128, 32, 32),
    "mixed3b": (128, 192, 96, 64),
    "mixed4a": (192, 204, 48, 64),
    "mixed4b": (160, 224, 64, 64),
    "mixed4c": (128, 256, 64, 64),
    "mixed4d": (112, 288, 64, 64),
    "mixed4e": (256, 320, 128, 128),
    "mixed5a": (256, 320, 128, 128),
    "mixed5b": (384, 384, 128, 128),
}


def inception_branch_ranges(layer: str) -> dict[str, range]:
    """Global channel range of each branch of an InceptionV1 mixed layer.

    Args:
        layer: a mixed layer name such as ``"mixed4b"``.

    Returns:
        ``{"1x1": range(0, 160), "3x3": range(160, 384), ...}``.

    Raises:
        KeyError: ``layer`` is not an InceptionV1 mixed layer.
    """
    sizes = INCEPTION_BRANCH_SIZES[layer]
    out: dict[str, range] = {}
    start = 0
    for name, size in zip(BRANCHES, sizes, strict=True):
        out[name] = range(start, start + size)
        start += size
    return out


def inception_branch_of(layer: str, channel: int) -> tuple[str, int]:
    """Branch name and channel offset inside the branch for a global channel index.

    Raises:
        KeyError: unknown layer.
        ValueError: channel outside the layer.
    """
    for name, rng in inception_branch_ranges(layer).items():
        if channel in rng:
            return name, channel - rng.start
    total = sum(INCEPTION_BRANCH_SIZES[layer])
    raise ValueError(f"channel {channel} is out of range for {layer} (0..{total - 1})")


@dataclass(frozen=True)
class PresetUnit:
    """One unit of a preset, before it becomes a config ``UnitSpec``."""

    layer: str
    channel: int
    roles: tuple[str, ...] = ("main",)
    hand_picked: bool = False
    sets: tuple[str, ...] = field(default=())


LAYERS_EXP1: tuple[str, ...] = tuple(INCEPTION_BRANCH_SIZES)

#: Experiment I: per layer, (1x1, 3x3, 5x5, pool) random maps and the hand-picked map.
EXP1_UNITS: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "mixed3a": ((25, 189, 197, 227), 230),
    "mixed3b": ((64, 178, 390, 430), 462),
    "mixed4a": ((68, 257, 427, 486), 501),
    "mixed4b": ((45, 339, 438, 491), 465),
    "mixed4c": ((94, 247, 432, 496), 449),
    "mixed4d": ((95, 342, 451, 483), 516),
    "mixed4e": ((231, 524, 656, 816), 809),
    "mixed5a": ((229, 278, 636, 743), 720),
    "mixed5b": ((119, 684, 844, 1007), 946),
}

#: Experiment I practice and catch units: three practice lists of five, in this order.
EXP1_PRACTICE: tuple[tuple[str, int], ...] = (
    ("mixed4b", 24),
    ("mixed5b", 976),
    ("mixed3a", 109),
    ("mixed5a", 635),
    ("mixed3b", 432),
    ("mixed4b", 133),
    ("mixed3a", 199),
    ("mixed4e", 746),
    ("mixed4a", 286),
    ("mixed4d", 4),
    ("mixed4e", 674),
    ("mixed5a", 373),
    ("mixed4a", 271),
    ("mixed3b", 319),
    ("mixed4b", 451),
)

INTUITIVENESS_UNITS: tuple[tuple[str, int], ...] = (
    ("mixed3a", 43),
    ("mixed4b", 504),
    ("mixed5b", 17),
)

LAYERS_EXP2: tuple[str, ...] = ("mixed3a", "mixed4a", "mixed4c", "mixed4e", "mixed5b")

#: Experiment II sets b-e: per layer the (1x1, 3x3, 5x5, pool) random maps. Set a is derived
#: from Experiment I; set e holds the catch units.
EXP2_SETS: dict[str, dict[str, tuple[int, int, int, int]]] = {
    "b": {
        "mixed3a": (14, 97, 203, 238),
        "mixed4a": (33, 355, 425, 497),
        "mixed4c": (53, 237, 402, 498),
        "mixed4e": (83, 323, 624, 755),
        "mixed5b": (14, 592, 829, 913),
    },
    "c": {
        "mixed3a": (12, 171, 212, 232),
        "mixed4a": (45, 321, 429, 478),
        "mixed4c": (59, 357, 400, 473),
        "mixed4e": (6, 401, 642, 724),
        "mixed5b": (266, 657, 839, 927),
    },
    "d": {
        "mixed3a": (53, 106, 204, 247),
        "mixed4a": (17, 200, 423, 506),
        "mixed4c": (95, 209, 416, 497),
        "mixed4e": (89, 373, 620, 783),
        "mixed5b": (300, 481, 875, 903),
    },
    "e": {
        "mixed3a": (28, 114, 195, 244),
        "mixed4a": (91, 364, 440, 495),
        "mixed4c": (27, 383, 403, 511),
        "mixed4e": (105, 534, 690, 813),
        "mixed5b": (81, 727, 874, 958),
    },
}


def _merge(units: list[PresetUnit]) -> list[PresetUnit]:
    """Merge duplicate (layer, channel) entries: roles and sets united, first order kept."""
    merged: dict[tuple[str, int], PresetUnit] = {}
    for unit in units:
        key = (unit.layer, unit.channel)
        if key in merged:
            old = merged[key]
            roles = tuple(dict.fromkeys(old.roles + unit.roles))
            sets = tuple(dict.fromkeys(old.sets + unit.sets))
            merged[key] = PresetUnit(
                unit.layer, unit.channel, roles, old.hand_picked or unit.hand_picked, sets
            )
        else:
            merged[key] = unit
    return list(merged.values())


def paper_exp1() -> list[PresetUnit]:
    """Experiment I: 45 main units, 15 practice/catch units, 3 intuitiveness units."""
    units: list[PresetUnit] = []
    for layer, (random_maps, hand) in EXP1_UNITS.items():
        units.extend(PresetUnit(layer, ch) for ch in random_maps)
        units.append(PresetUnit(layer, hand, hand_picked=True))
    for i, (layer, ch) in enumerate(EXP1_PRACTICE):
        units.append(PresetUnit(layer, ch, ("practice", "catch"), sets=(f"practice{i // 5 + 1}",)))
    units.extend(PresetUnit(layer, ch, ("intuitiveness",)) for layer, ch in INTUITIVENESS_UNITS)
    return _merge(units)


def paper_exp2() -> list[PresetUnit]:
    """Experiment II: sets a-d (20 main units each), set e (catch), practice and intuitiveness.

    The paper names no practice units for Experiment II; like the app's `paper-exp2` design we
    use Experiment I's 15 practice units.
    """
    units: list[PresetUnit] = []
    for layer in LAYERS_EXP2:
        units.extend(PresetUnit(layer, ch, sets=("a",)) for ch in EXP1_UNITS[layer][0])
    for name, table in EXP2_SETS.items():
        roles = ("catch",) if name == "e" else ("main",)
        for layer in LAYERS_EXP2:
            units.extend(PresetUnit(layer, ch, roles, sets=(name,)) for ch in table[layer])
    units.extend(PresetUnit(layer, ch, ("practice",)) for layer, ch in EXP1_PRACTICE)
    units.extend(PresetUnit(layer, ch, ("intuitiveness",)) for layer, ch in INTUITIVENESS_UNITS)
    return _merge(units)


PRESETS = {"paper-exp1": paper_exp1, "paper-exp2": paper_exp2}
