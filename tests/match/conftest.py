"""The entity and rule set the product ships, as the matcher sees it."""

from __future__ import annotations

import pytest

from monitor.match import EntitySpec, RuleSpec


@pytest.fixture
def shipped_entities() -> dict[str, EntitySpec]:
    return {
        "ilham-aliyev": EntitySpec(
            id="ilham-aliyev",
            aliases=("Ilham Aliyev", "İlham Əliyev", "Ильхам Алиев", "President Aliyev", "Aliyev"),
            not_names=("Heydar Aliyev", "Mehriban Aliyeva"),
            type="PERSON",
        ),
        "erdogan": EntitySpec(
            id="erdogan",
            aliases=("Recep Tayyip Erdoğan", "Tayyip Erdoğan", "Erdoğan", "Эрдоган"),
            type="PERSON",
        ),
        "karabakh": EntitySpec(
            id="karabakh",
            aliases=("Karabakh", "Nagorno-Karabakh", "Karabağ", "Qarabağ", "Artsakh"),
            type="GPE",
        ),
    }


@pytest.fixture
def shipped_rules() -> list[RuleSpec]:
    return [
        RuleSpec(id="aliyev-erdogan", query="@ilham-aliyev AND @erdogan"),
        RuleSpec(id="karabakh", query="@karabakh", exclude='football OR "Qarabağ FK"'),
        RuleSpec(
            id="grain-corridor",
            query='"grain corridor" OR ("Black Sea" NEAR/10 grain*)',
            languages=("en",),
        ),
    ]
