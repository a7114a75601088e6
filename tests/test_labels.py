import pytest

from pipeline.errors import ReviewflowError
from pipeline.labels import LABEL_ENTRY_BYTES, ClassTable, natural_order, order_classes


def test_natural_order_sorts_numbers_as_numbers():
    assert natural_order(["10", "2", "1"]) == ["1", "2", "10"]
    assert natural_order(["positive", "neutral", "negative"]) == ["negative", "neutral", "positive"]


def test_two_classes_put_the_positive_one_second():
    assert order_classes(["pos", "neg"], None) == ["neg", "pos"]
    assert order_classes(["good", "bad"], "bad") == ["good", "bad"]
    with pytest.raises(ReviewflowError, match="not one of"):
        order_classes(["a", "b"], "c")
    with pytest.raises(ReviewflowError, match="for two classes"):
        order_classes(["a", "b", "c"], "a")


def test_fasttext_polarity_keeps_its_record_ids_whatever_comes_first():
    table = ClassTable(min_examples=2)
    assert table.admit("2", "p1", 2) == []          # held until the label is seen twice
    assert table.admit("2", "p2", 2) == ["p1", "p2"]
    assert table.admit("1", "n1", 2) == []
    assert table.admit("1", "n2", 2) == ["n1", "n2"]
    assert table.admit("1", "n3", 2) == ["n3"]
    classes = table.classes(None)
    assert classes.names == ["1", "2"] and classes.positive == "2" and classes.record_to_class == [0, 1]


def test_a_rare_label_is_held_then_returned_for_rejection():
    table = ClassTable(min_examples=3)
    for index in range(3):
        table.admit("a", f"a{index}", 1)
        table.admit("b", f"b{index}", 1)
    assert table.admit("typo", "t0", 1) == []
    assert table.freeze() == ([], ["t0"])
    assert table.record_id("typo") is None
    classes = table.classes(None)
    assert classes.names == ["a", "b"]
    # record ids: 1 -> 0 and 2 -> 1 are reserved; a and b come next; neither 1 nor 2 is a class here
    assert classes.record_to_class == [-1, -1, 0, 1]


def test_star_ratings_order_by_number_not_by_arrival():
    table = ClassTable(min_examples=1)
    for label in ["5", "3", "1", "4", "2"]:
        assert table.admit(label, label, 1) == [label]
    classes = table.classes(None)
    assert classes.names == ["1", "2", "3", "4", "5"] and classes.positive is None
    assert [classes.names[classes.record_to_class[table.record_id(label)]] for label in "53142"] == list("53142")


def test_fixed_classes_refuse_others_and_need_no_support():
    table = ClassTable(fixed=("pos", "neg"))
    assert table.admit("pos", "x", 1) == ["x"]
    assert table.admit("meh", "y", 1) is None


def test_the_buffer_is_bounded():
    entry = LABEL_ENTRY_BYTES + 1  # a new label's name and entry count too
    table = ClassTable(min_examples=100, budget_bytes=entry + 10)
    assert table.admit("a", "x", 6) == []
    assert table.admit("b", "y", 6) is None          # over budget: refused, not held
    assert table.admit("a", "z", 4) == []            # a held label's next line costs only its bytes
    assert table.pending_bytes == entry + 10 and "b" not in table.counts


def test_one_class_is_not_a_classifier():
    table = ClassTable(min_examples=1)
    table.admit("good", "x", 1)
    with pytest.raises(ReviewflowError, match="two or more"):
        table.classes(None)


def test_a_tiny_polarity_file_keeps_both_classes():
    table = ClassTable(min_examples=10)
    assert table.admit("2", "p", 1) == [] and table.admit("1", "n", 1) == []
    assert table.admit("2x", "junk", 1) == []
    assert table.freeze() == (["n", "p"], ["junk"])
    classes = table.classes(None)
    assert classes.names == ["1", "2"] and classes.record_to_class == [0, 1]  # 2x never became a class
