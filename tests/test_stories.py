"""Stories across feeds and processes: ``assign_stories`` with each database's in-memory
``StoryIndex`` kept current from the stories table (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from monitor.ingest import dedup
from monitor.ingest.parse import Entry
from monitor.store import queries
from monitor.store.db import Database

NOW = datetime.now(UTC)
LEAD = ("Dockworkers in Varnholm ended their strike on Friday night after the port authority "
        "agreed to hire forty more crane operators before the winter season and to pay the "
        "overtime owed since March, the union said in a statement read at the main gate")
COPY = LEAD.replace("forty", "40")
OTHER = ("The regional court in Varnholm suspended the dredging works in Kessel Bay on "
         "Wednesday, ruling that the port authority started before its environmental permit "
         "became final; environmental groups had warned about the spawning grounds")

QUIET = "A quiet day at the harbour with nothing much to report, the harbour master said"


def _packed(text: str) -> bytes:
    return dedup.pack([dedup.signature(text)])[0]


def _db(url: str) -> Database:
    db = Database(url)
    db.upgrade()
    db.call(queries.sync_feeds, [(f, f"http://{f}.test/feed", None) for f in "abc"], NOW)
    return db


def _assign(session: Session, db: Database, feed: str, texts: tuple[str, ...],
            when: datetime) -> list[int]:
    """Assign the texts' stories and store them as articles of ``feed``, as a poll does."""
    stories = queries.assign_stories(
        session, feed_id=feed, now=when, threshold=dedup.NEAR_DUPLICATE, index=db.stories,
        keys=[queries.StoryKey(t[:20], None, _packed(t)) for t in texts])
    queries.insert_articles(session, feed, [
        queries.NewArticle(Entry(key=f"{when.isoformat()} {t}", url=None, title=t[:20],
                                 summary=t, body="", author=None, lang="en", published_at=when),
                           None, None, story) for t, story in zip(texts, stories, strict=True)],
        when)
    return stories


@pytest.fixture
def db(db_url: str) -> Database:
    return _db(db_url)


def _call(db: Database, feed: str, *texts: str, when: datetime = NOW) -> list[int]:
    with db.session() as session:
        return _assign(session, db, feed, texts, when)


def test_a_copy_joins_the_story_another_process_started(db_url: str) -> None:
    """Two daemons on one database: each index catches up with the other's stories."""
    first, second = _db(db_url), _db(db_url)
    (wire,) = _call(first, "a", LEAD)
    # its own stories join its index when the transaction commits, without a read-back
    assert first.stories.last_id == wire and len(first.stories) == dedup.NUM_BANDS
    _call(second, "c", "Something else entirely happened in the harbour today, people said")
    (copy,) = _call(second, "b", COPY)
    assert copy == wire
    # and back: a story the second one started is found by the first
    (court,) = _call(second, "b", OTHER)
    (court_copy,) = _call(first, "c", OTHER.replace("Wednesday", "Wednesday morning"))
    assert court_copy == court != wire
    # a restarted daemon (a new, empty index) fills it from the table
    restarted = _db(db_url)
    assert _call(restarted, "c", COPY) == [wire]
    assert restarted.stories.last_id >= court
    for d in (first, second, restarted):
        d.dispose()


def test_stories_out_of_the_window_and_of_the_same_feed_are_not_joined(db: Database) -> None:
    (old,) = _call(db, "a", LEAD, when=NOW - queries.STORY_WINDOW - timedelta(hours=1))
    (new,) = _call(db, "b", COPY)
    assert new != old, "a story older than the near-duplicate window starts anew"
    (again,) = _call(db, "b", LEAD)
    assert again != new, "a feed does not syndicate itself"
    assert _call(db, "c", LEAD) == [again], "the most similar story wins"
    db.dispose()


def test_a_story_the_feed_is_in_leaves_the_next_most_similar(db: Database) -> None:
    """The most similar story is not joinable when the feed has an article in it: the
    article then joins the next most similar one, not a new story."""
    (wire,) = _call(db, "a", LEAD)
    assert _call(db, "c", COPY) == [wire]
    (reworded,) = _call(db, "a", LEAD.replace("March", "early March"))
    assert reworded != wire, "a feed does not syndicate itself"
    assert _call(db, "c", LEAD) == [reworded]
    db.dispose()


def test_a_rolled_back_assignment_leaves_nothing_behind(db: Database) -> None:
    """A transaction that started a story and then failed must not make the index skip the
    story that later gets the same id (SQLite reuses the rowids of rolled-back inserts)."""
    with pytest.raises(RuntimeError), db.session() as session:
        _assign(session, db, "a", (QUIET,), NOW)
        _assign(session, db, "b", (LEAD,), NOW)    # a second batch in the same transaction
        raise RuntimeError("the poll failed after assigning")
    (court,) = _call(db, "a", OTHER)
    (wire,) = _call(db, "a", LEAD)
    assert _call(db, "b", COPY) == [wire]
    assert _call(db, "b", OTHER.replace("Wednesday", "Wednesday morning")) == [court]
    db.dispose()


def test_the_index_forgets_stories_that_left_the_window(db: Database) -> None:
    (old,) = _call(db, "a", OTHER, when=NOW - timedelta(days=5))
    _call(db, "a", LEAD)
    db.stories.floor_checked_at = None          # as after an hour
    _call(db, "b", QUIET)
    assert db.stories.floor_id > old
    assert old not in db.stories.candidates([_packed(OTHER)])[0]
    db.dispose()


def test_each_new_story_gets_its_own_row(db: Database) -> None:
    """New stories are inserted in multi-row statements whose RETURNING rows come in no set
    order: each article must still get the story holding its own title and signature (also
    when a batch repeats a title over different texts), and two identical entries two
    stories."""
    from monitor.store.models import Story

    same_title = [QUIET[:20] + f" and the ferry number {n} left late, crews said" * (n + 1)
                  for n in range(3)]
    texts = (LEAD, OTHER, QUIET, LEAD, "Ferry timetable changes for the winter season",
             *same_title)
    assert len({t[:20] for t in texts}) == 4
    ids = _call(db, "a", *texts)
    assert len(set(ids)) == len(texts)
    with db.session() as s:
        stored = {story.id: story for story in s.query(Story).filter(Story.id.in_(ids))}
    for text, story_id in zip(texts, ids, strict=True):
        assert stored[story_id].title == text[:20]
        assert stored[story_id].signature == _packed(text)
