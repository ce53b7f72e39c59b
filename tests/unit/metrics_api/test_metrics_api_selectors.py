"""Label selectors: the apimachinery grammar, its matching rules, and its errors."""

from __future__ import annotations

import re

import pytest

from autoscaler.metrics_api.selectors import EVERYTHING, Requirement, SelectorError, parse

LABELS = {"app": "llama", "serving.kserve.io/inferenceservice": "llama", "gen": "3", "empty": ""}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("   ", True),
        ("app=llama", True),
        ("app==llama", True),
        ("app = llama", True),
        ("app=qwen", False),
        ("app!=qwen", True),
        ("missing!=x", True),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("app in (llama, qwen)", True),
        ("app notin (llama)", False),
        ("missing notin (a)", True),
        ("gen>2", True),
        ("gen<3", False),
        ("app>1", False),
        ("missing<5", False),
        ("empty=", True),
        ("empty in (,x)", True),
        ("empty in (x,)", True),
        ("serving.kserve.io/inferenceservice=llama,app,gen>0", True),
        ("serving.kserve.io/inferenceservice=llama,!app", False),
    ],
)
def test_matching(text: str, matches: bool) -> None:
    assert parse(text).matches(LABELS) is matches


def test_equality_is_a_one_value_set() -> None:
    assert parse("a=b").requirements == (Requirement("a", "in", frozenset({"b"})),)
    assert parse("a!=b").requirements == (Requirement("a", "notin", frozenset({"b"})),)
    assert parse("") is EVERYTHING


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("a==", None),  # fine: empty value; listed below only as an error when malformed
        ("=a", "expected a label key"),
        ("a=b=c", "expected ','"),
        ("a in ()", "at least one value"),
        ("a in (b", "unexpected end"),
        ("a in b", "expected '('"),
        ("a in (b c)", "in a value set"),
        ("a>b", "integer"),
        ("a,", "unexpected end"),
        (",a", "expected a label key"),
        ("a b", "expected an operator"),
        ("-a=b", "invalid label key"),
        ("a=-b", "invalid label value"),
        ("a=" + "x" * 64, "invalid label value"),
        ("Bad_Prefix/a=b", "bad prefix"),
        ("/a=b", "bad prefix"),
        ("a/b/c=d", "bad prefix"),
        ("ü=b", "invalid label key"),
        ("x" * 20000, "longer than"),
    ],
)
def test_errors(text: str, why: str | None) -> None:
    if why is None:
        assert parse(text).matches({"a": ""})
        return
    with pytest.raises(SelectorError, match=re.escape(why)):
        parse(text)
