"""The listener in words: each interest of a profile carries a summary, written from its items
and habits when the generator has written one that passes the checks, else its label."""

from __future__ import annotations

import numpy as np
from fixed_answer import FixedAnswer

from podrec.model.base import CatalogData
from podrec.profile.interests import Interest
from podrec.profile.summaries import SummaryFacts, interest_facts
from podrec.service.writer import GenerationWriter, summarise

FACTS = SummaryFacts(("Casefile True Crime", "Crime Junkie"), ("True Crime",), 60,
                     "mostly at night", None, "True Crime", "en")


def test_interest_facts_say_what_kind_of_shows_and_when():
    catalog = CatalogData(ids=["a", "b", "c"], kinds=["show"] * 3,
                          titles=["Crime Junkie", "Casefile", "Cold"],
                          categories=[["True Crime"], ["True Crime", "History"], ["True Crime"]],
                          vectors=np.eye(3, dtype=np.float32))
    catalog.durations = np.array([3600.0, 3000.0, np.nan])
    hours = np.zeros(24)
    hours[23], hours[1] = 2.0, 1.0
    interest = Interest(np.array([0, 1, 2]), np.array([1.0, 0.5, 0.2]), 1.0, hours)
    facts = interest_facts(catalog, interest, "True Crime")
    assert facts.titles == ("Casefile", "Cold", "Crime Junkie")  # by title: a stable prompt
    assert facts.genres[0] == "True Crime" and facts.when == "mostly at night"
    assert facts.minutes == 55 and "Length: long" in facts.lines()


def test_a_summary_that_passes_the_checks_is_shown():
    writer = GenerationWriter(FixedAnswer(
        {"summary": "long-form true crime investigations, at night"}))
    out = summarise(writer, [FACTS], wait=True)[0]
    assert out == {"summary": "long-form true crime investigations, at night",
                   "summary_source": "generated", "summary_fallback": None}


def test_a_summary_naming_another_show_falls_back_to_the_label():
    writer = GenerationWriter(FixedAnswer(
        {"summary": "fans of My Favorite Murder, mostly at night"}))
    out = summarise(writer, [FACTS], wait=True)[0]
    assert out["summary"] == "True Crime" and out["summary_source"] == "template"
    assert out["summary_fallback"].startswith("rejected (invented")


def test_a_summary_is_written_in_the_background_and_shown_next_time():
    writer = GenerationWriter(FixedAnswer(
        {"summary": "true crime stories at night"}))
    first = summarise(writer, [FACTS])[0]
    assert first["summary_source"] == "template" and first["summary_fallback"] == "pending"
    writer.wait()
    assert summarise(writer, [FACTS])[0]["summary_source"] == "generated"


def test_the_profile_carries_a_summary_of_each_interest(sample_app):
    profile = sample_app.profile("demo-listener")
    assert profile["interests"]
    for it in profile["interests"]:
        assert it["summary"] and it["summary_source"] in ("generated", "template")
        if it["summary_source"] == "template":
            assert it["summary"] == it["label"] and it["summary_fallback"]


def test_the_rest_profile_route_carries_the_summary(sample_app):
    from podrec.server.routes.users import profile as profile_route

    body = profile_route(sample_app, "demo-listener")
    assert all("summary" in it and "summary_source" in it for it in body["interests"])
