"""Every protocol of ``evaluate_ava`` against the numbers the reference evaluators themselves printed.

Inputs come from tests/ava_eval_cases.py (hand cases per rule, small random cases, large cases from
../shared); tests/fixtures/ava_eval/reference_aps.json holds the references' per-class APs (see
its "references" entry for the repository commits). Tolerance 1e-12 per class.
"""
from __future__ import annotations

import json
import math

import pytest

from seqformer.data.ava_format import AvaFormatError
from seqformer.evaluation.ava_eval import evaluate_ava

from ava_eval_cases import (
    FIXTURE,
    HAND_CASES,
    LARGE_CASES,
    PROTOCOLS,
    RANDOM_CASES,
    SHARED_VAL,
    argsort_fingerprint,
    file_digest,
    write_hand_case,
    write_large_case,
    write_random_case,
)

REFERENCE = json.loads(FIXTURE.read_text())
FINGERPRINT = argsort_fingerprint()
TOLERANCE = 1e-12


def _expected(case: str, protocol: str) -> dict:
    entry = REFERENCE["cases"][case][protocol]
    if "by_argsort" not in entry:
        return entry
    if FINGERPRINT not in entry["by_argsort"]:
        pytest.skip(f"{case}/{protocol}: score ties make the reference AP depend on np.argsort's tie order, and "
                    f"this machine's (fingerprint {FINGERPRINT}) matches none recorded "
                    f"({REFERENCE['argsort_fingerprints']}, numpy {REFERENCE['numpy']})")
    return entry["by_argsort"][FINGERPRINT]


def _compare(files, case: str, protocol: str) -> float:
    """Max |difference| over classes; asserts NaN where the reference has NaN / no entry."""
    expected = _expected(case, protocol)
    if "error" in expected:
        return _compare_failure(files, case, protocol, expected["error"])
    result = evaluate_ava(*files, protocol=protocol)
    worst = 0.0
    for name, ap in result["per_class"].items():
        reference = expected["per_class"].get(name)  # MMAction2 lists only classes it scored
        if reference is None:
            assert math.isnan(ap), (case, protocol, name, ap)
        else:
            assert abs(ap - reference) <= TOLERANCE, (case, protocol, name, ap, reference)
            worst = max(worst, abs(ap - reference))
    assert set(expected["per_class"]) <= set(result["per_class"])
    if expected["mAP"] is None:
        assert math.isnan(result["mAP"])
    else:
        assert abs(result["mAP"] - expected["mAP"]) <= TOLERANCE
    return worst


def _compare_failure(files, case: str, protocol: str, error: str) -> float:
    if "Invalid box data" in error:  # MMAction2's box list rejects inverted boxes: so do we
        with pytest.raises(AvaFormatError, match=r"det\.csv:\d+: box with x1 > x2 or y1 > y2"):
            evaluate_ava(*files, protocol=protocol)
    elif "need at least one array to concatenate" in error:  # MMAction2 with no evaluated GT box
        result = evaluate_ava(*files, protocol=protocol)
        assert math.isnan(result["mAP"]) and all(math.isnan(ap) for ap in result["per_class"].values())
    else:
        raise AssertionError(f"{case}/{protocol}: unexpected reference failure {error}")
    return 0.0


def test_fixture_covers_every_case_and_protocol():
    assert set(REFERENCE["cases"]) == set(HAND_CASES) | set(RANDOM_CASES) | set(LARGE_CASES)
    assert all(set(entry) == set(PROTOCOLS) for entry in REFERENCE["cases"].values())
    assert all(ref["commit"] and len(ref["commit"]) == 40 for ref in REFERENCE["references"].values())


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", sorted(HAND_CASES))
def test_hand_case_equals_reference(tmp_path, case, protocol):
    _compare(write_hand_case(case, tmp_path), case, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_random_cases_equal_reference(tmp_path, protocol):
    for case in RANDOM_CASES:
        _compare(write_random_case(case, tmp_path / case), case, protocol)


@pytest.mark.parametrize("case", sorted(LARGE_CASES))
def test_large_case_from_shared_val_equals_reference(tmp_path, case):
    if not SHARED_VAL.exists():
        pytest.skip(f"shared AVA files not found under {SHARED_VAL.parent}")
    if file_digest(SHARED_VAL) != REFERENCE["shared_val_csv_sha256_16"]:
        pytest.skip(f"{SHARED_VAL} differs from the file the reference numbers were made from")
    files = write_large_case(case, tmp_path)
    for protocol in PROTOCOLS:
        _compare(files, case, protocol)


def test_the_protocols_differ_where_the_rules_differ():
    # The hand cases exercise the rules: check that the references themselves disagree there.
    def aps(case):
        return {p: _expected(case, p).get("mAP") for p in PROTOCOLS}

    assert aps("unknown_keyframe") == {"activitynet": 1.0, "pyslowfast": pytest.approx(1 / 3), "mmaction2": 1.0}
    assert aps("two_column_keyframe") == {"activitynet": 0.5, "pyslowfast": pytest.approx(1 / 3), "mmaction2": 1.0}
    assert aps("non_evaluated_class_keyframe")["activitynet"] == pytest.approx((1 / 3 + 1) / 2)
    assert aps("exclusions") == {"activitynet": 1.0, "pyslowfast": 1.0, "mmaction2": pytest.approx(2 / 3)}
    assert aps("cap_50") == {"activitynet": 0.0, "pyslowfast": pytest.approx(1 / 51),
                             "mmaction2": pytest.approx(1 / 51)}
    assert aps("degenerate_boxes") == {"activitynet": 1.0, "pyslowfast": 1.0, "mmaction2": pytest.approx(1 / 3)}
    assert aps("file_order_vs_score_order") == {"activitynet": 1.0, "pyslowfast": 0.5, "mmaction2": 1.0}
    assert aps("classes_without_detections_or_gt") == {"activitynet": 0.5, "pyslowfast": 0.5, "mmaction2": 1.0}
    # IoU exactly 0.5 in float64 (c1 a TP) is below 0.5 in MMAction2's float32, and the reverse for c2
    assert _expected("float32_iou", "activitynet")["per_class"] == {"c1": 1.0, "c2": 0.0, "c3": None}
    assert _expected("float32_iou", "mmaction2")["per_class"] == {"c1": 0.0, "c2": 1.0}
