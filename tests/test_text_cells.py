"""TextCells: every missing text cell (None, NaN, pandas' NA, NaT) becomes None, a date or a
time its text, every other cell stays; in a model file it is checked field by field like the
networks."""

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline

from fastfnn import TextCells
from fastfnn._modelcheck import FieldError, check_estimator


def test_every_missing_marker_becomes_none():
    frame = pd.DataFrame({"a": pd.array(["x", None, "y", None], dtype="string"),
                          "b": ["u", np.nan, None, "v"],
                          "c": [pd.NaT, "w", "w", pd.NA],
                          "d": pd.array(["p", None, "q", "r"], dtype="string[pyarrow]")})
    cells = TextCells().fit(frame).transform(frame)
    assert cells.dtype == object and cells.shape == (4, 4)
    want = [["x", "u", None, "p"], [None, None, "w", None], ["y", None, "w", "q"],
            [None, "v", None, "r"]]
    assert cells.tolist() == want
    assert frame["b"].isna().sum() == 2  # the input is left as it was
    imputed = make_pipeline(TextCells(), SimpleImputer(missing_values=None,
                                                       strategy="most_frequent"))
    assert imputed.fit_transform(frame)[:, 2].tolist() == ["w"] * 4
    assert list(TextCells().fit(frame).get_feature_names_out()) == ["a", "b", "c", "d"]
    numpy_markers = np.array([[np.float32("nan")], [np.datetime64("NaT")], ["x"]], object)
    assert TextCells().fit_transform(numpy_markers).tolist() == [[None], [None], ["x"]]


def test_columns_read_by_pyarrow_come_back_as_cells():
    """pandas' pyarrow reader's text columns (which scikit-learn's check hands back read-only)."""
    frame = pd.read_csv(io.StringIO("a,b\nx,1\n,2\n"), engine="pyarrow",
                        dtype={"a": "string[pyarrow]"})
    assert TextCells().fit_transform(frame[["a"]]).tolist() == [["x"], [None]]


FRAME = pd.DataFrame({"city": ["a", "b"], "zip": ["1", "2"]})


@pytest.mark.parametrize("misuse", [
    lambda t: t.fit(FRAME["city"].to_numpy()),
    lambda t: t.fit(FRAME).transform(FRAME[["city"]]),
    lambda t: t.fit(FRAME).transform(FRAME[["zip", "city"]]),
    lambda t: t.fit(FRAME.to_numpy()).transform(FRAME.to_numpy()[:, :1]),
    lambda t: t.fit(FRAME).get_feature_names_out(["only_one"]),
], ids=["1-D", "a column fewer", "columns swapped", "array with a column fewer",
        "other feature names"])
def test_misuse_is_refused_as_scikit_learns_transformers_refuse_it(misuse):
    """The oracle: scikit-learn's SimpleImputer on object cells, given the same misuse, and
    its error message (the class names aside)."""
    with pytest.raises(ValueError) as ours:
        misuse(TextCells())
    with pytest.raises(ValueError) as theirs:
        misuse(SimpleImputer(missing_values=None, strategy="most_frequent"))
    assert str(ours.value) == str(theirs.value).replace("SimpleImputer", "TextCells")


def test_a_model_file_text_cells_holds_only_its_fields():
    fitted = TextCells().fit(pd.DataFrame({"a": ["x"], "b": ["y"]}))
    check_estimator(fitted)
    for field, value in (("n_features_in_", -1), ("feature_names_in_", np.array(["a"], object)),
                         ("coefs_", []), ("dates_as_text_", "yes")):
        crafted = TextCells().fit(pd.DataFrame({"a": ["x"], "b": ["y"]}))
        setattr(crafted, field, value)
        with pytest.raises(FieldError):
            check_estimator(crafted)


def test_dates_become_their_text_and_numbers_stay_numbers():
    """Dates, times and durations as ``str(cell)`` (what the command reads for them; the
    oracle: Python's own ``str``), numbers and bools unchanged (an encoder compares 1 with 1.0);
    a TextCells fitted before dates became text (no ``dates_as_text_``) leaves them as its
    encoder learned them."""
    import datetime

    day = pd.Timestamp("2021-01-02 03:04:05")
    frame = pd.DataFrame({"when": pd.Series([day, pd.NaT], dtype="datetime64[ns]"),
                          "mixed": pd.Series([datetime.date(2020, 5, 6), 3], dtype=object),
                          "span": pd.Series([pd.Timedelta(hours=1), True], dtype=object),
                          "n": pd.Series([1, pd.NA], dtype="Int64")})
    cells = TextCells().fit(frame).transform(frame)
    assert cells.tolist() == [[str(day), "2020-05-06", str(pd.Timedelta(hours=1)), 1],
                              [None, 3, True, None]]
    assert type(cells[0, 3]) is not str and type(cells[1, 1]) is not str
    earlier = TextCells().fit(frame)
    del earlier.dates_as_text_
    check_estimator(earlier)
    assert earlier.transform(frame)[0, 0] == day
