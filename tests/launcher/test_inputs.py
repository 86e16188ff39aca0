"""One ASCII spelling of numbers for every part (launcher.inputs): issue 24's float findings."""

from __future__ import annotations

import argparse
import re

import pytest

from launcher.inputs import finite_number, finite_number_arg


@pytest.mark.parametrize("text", ["0.5", "-1e-3", "3", ".25", "2.", "1E+2"])
def test_ascii_decimals_are_read(text: str) -> None:
    assert finite_number(text) == float(text)


# float() takes each of these; README says ASCII digits only.
@pytest.mark.parametrize("text", ["١", "1_0", "+1", " 1", "1 ", "nan", "inf", "-inf", "0x10",
                                  "１", "", "1e400"])
def test_other_spellings_and_non_finite_values_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="number"):
        finite_number(text)
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(text))):
        finite_number_arg(text)
