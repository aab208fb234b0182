//! Live transcription of real-time rooms on a fresh database (SQLite, or Postgres when
//! `SLUICE_TEST_POSTGRES_URL` is set): a room's transcription setting is stored on create,
//! changed and cleared; a session's lines append in order across calls, numbered on from the
//! last, and read back by start time; concurrent appends to one session take turns; search
//! finds lines by any form of their words, best first, never a deleted room's lines, and no
//! query a person can type makes it fail; a session keeps at most its first
//! `MAX_TRANSCRIPT_LINES` lines.

use std::collections::HashSet;

use sluice_storage::test_support::TestDatabase;
use sluice_storage::{
    Db, NewRoom, NewRoomTranscriptLine, Room, RoomId, RoomSearchHit, RoomSession, RoomSessionId,
    RoomTranscriptLine, RoomTranscription, MAX_TRANSCRIPT_LINES,
};

const NODE: &str = "http://10.0.0.5:8080";

async fn fresh_db() -> (TestDatabase, Db) {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    (database, db)
}

fn transcription(language: &str) -> RoomTranscription {
    RoomTranscription {
        language: language.to_owned(),
    }
}

/// A room named `name`, transcribed in English, with a running session.
async fn running_room(db: &Db, name: &str) -> (Room, RoomSession) {
    let room = db
        .create_room(&NewRoom {
            transcription: Some(transcription("en")),
            ..NewRoom::named(name)
        })
        .await
        .unwrap();
    let session = db.start_room_session(&room.id, NODE).await.unwrap();
    (room, session)
}

/// A line `who` said at `start_ms`, for a second.
fn said(who: &str, start_ms: i64, text: &str) -> NewRoomTranscriptLine {
    NewRoomTranscriptLine {
        participant_sid: format!("PA_{who}"),
        participant_identity: who.to_owned(),
        participant_name: format!("{who} (name)"),
        track_sid: format!("TR_{who}_mic"),
        start_ms,
        end_ms: start_ms + 1_000,
        text: text.to_owned(),
    }
}

/// `line` as stored under `line_no`.
fn stored(line_no: u32, line: &NewRoomTranscriptLine) -> RoomTranscriptLine {
    RoomTranscriptLine {
        line_no,
        participant_sid: line.participant_sid.clone(),
        participant_identity: line.participant_identity.clone(),
        participant_name: line.participant_name.clone(),
        track_sid: line.track_sid.clone(),
        start_ms: line.start_ms,
        end_ms: line.end_ms,
        text: line.text.clone(),
    }
}

fn texts(hits: &[RoomSearchHit]) -> Vec<&str> {
    hits.iter().map(|hit| hit.text.as_str()).collect()
}

#[tokio::test]
async fn a_rooms_transcription_is_stored_on_create_changed_and_cleared() {
    let (_database, db) = fresh_db().await;
    let plain = db.create_room(&NewRoom::named("plain")).await.unwrap();
    assert_eq!(plain.transcription, None, "off unless asked for");
    let standup = db
        .create_room(&NewRoom {
            transcription: Some(transcription("en")),
            ..NewRoom::named("standup")
        })
        .await
        .unwrap();
    assert_eq!(standup.transcription, Some(transcription("en")));
    // Every read gives it back.
    assert_eq!(
        db.get_room(&standup.id).await.unwrap(),
        Some(standup.clone())
    );
    assert_eq!(
        db.get_room_by_name("standup").await.unwrap(),
        Some(standup.clone())
    );
    assert_eq!(
        db.room_for_join("standup", false).await.unwrap(),
        Some(standup.clone())
    );
    assert_eq!(
        db.list_rooms(10, None).await.unwrap().items,
        [plain.clone(), standup.clone()]
    );

    let changed = db
        .set_room_transcription(&standup.id, Some(&transcription("fr")))
        .await
        .unwrap()
        .expect("the room exists");
    assert_eq!(changed.transcription, Some(transcription("fr")));
    assert!(changed.updated_at >= standup.updated_at);
    assert_eq!(changed.created_at, standup.created_at);
    assert_eq!(
        (changed.name.as_str(), changed.max_participants),
        (standup.name.as_str(), standup.max_participants),
        "nothing else changes"
    );
    assert_eq!(
        db.get_room(&standup.id).await.unwrap(),
        Some(changed.clone())
    );

    let cleared = db
        .set_room_transcription(&standup.id, None)
        .await
        .unwrap()
        .expect("the room exists");
    assert_eq!(cleared.transcription, None);
    assert!(cleared.updated_at >= changed.updated_at);
    assert_eq!(
        db.get_room(&standup.id)
            .await
            .unwrap()
            .unwrap()
            .transcription,
        None
    );
    // Turned on for a room made without it.
    let on = db
        .set_room_transcription(&plain.id, Some(&transcription("de")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on.transcription, Some(transcription("de")));

    let missing = RoomId::parse("room_missing").unwrap();
    assert_eq!(
        db.set_room_transcription(&missing, Some(&transcription("en")))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.set_room_transcription(&missing, None).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn lines_append_in_order_across_calls_and_read_back_by_start_time() {
    let (_database, db) = fresh_db().await;
    let (room, session) = running_room(&db, "standup").await;
    assert!(db
        .room_transcript_lines(&session.id)
        .await
        .unwrap()
        .is_empty());

    // Lines come as they are complete: not always in time order, one speaker's long line
    // after another's short one.
    let bob_long = said("bob", 1_000, "Let us start with the budget.");
    let alice_short = said("alice", 1_500, "Sure.");
    let first_call = [bob_long.clone(), alice_short.clone()];
    assert_eq!(
        db.append_room_transcript_lines(&session.id, &room.id, &first_call)
            .await
            .unwrap(),
        2
    );
    let alice_early = said("alice", 0, "Good morning everyone.");
    let bob_same_start = said("bob", 1_500, "Same start as Alice.");
    let second_call = [
        alice_early.clone(),
        said("bob", 3_000, "  \n"),
        bob_same_start.clone(),
        said("alice", 4_000, ""),
    ];
    assert_eq!(
        db.append_room_transcript_lines(&session.id, &room.id, &second_call)
            .await
            .unwrap(),
        2,
        "lines without text are not stored"
    );
    assert_eq!(
        db.append_room_transcript_lines(&session.id, &room.id, &[])
            .await
            .unwrap(),
        0
    );
    let nul = said("carol", 5_000, "nul\0 removed");
    assert_eq!(
        db.append_room_transcript_lines(&session.id, &room.id, std::slice::from_ref(&nul))
            .await
            .unwrap(),
        1
    );

    // By start time; lines starting together in the order they were appended; numbered in
    // the order they were appended, on from the call before.
    assert_eq!(
        db.room_transcript_lines(&session.id).await.unwrap(),
        [
            stored(2, &alice_early),
            stored(0, &bob_long),
            stored(1, &alice_short),
            stored(3, &bob_same_start),
            RoomTranscriptLine {
                text: "nul removed".to_owned(),
                ..stored(4, &nul)
            },
        ]
    );

    // Another session of the room, and another room's, have transcripts of their own.
    db.end_room_session(&session.id).await.unwrap();
    let next = db.start_room_session(&room.id, NODE).await.unwrap();
    let (other_room, other) = running_room(&db, "other").await;
    let next_line = said("alice", 0, "Second session.");
    db.append_room_transcript_lines(&next.id, &room.id, std::slice::from_ref(&next_line))
        .await
        .unwrap();
    db.append_room_transcript_lines(&other.id, &other_room.id, &[said("dan", 0, "Elsewhere.")])
        .await
        .unwrap();
    assert_eq!(
        db.room_transcript_lines(&next.id).await.unwrap(),
        [stored(0, &next_line)],
        "numbered from 0 per session"
    );
    assert_eq!(
        db.room_transcript_lines(&session.id).await.unwrap().len(),
        5
    );
    // An ended session's transcript still takes the lines a node was finishing.
    assert_eq!(
        db.append_room_transcript_lines(&session.id, &room.id, &[said("bob", 6_000, "Bye.")])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.room_transcript_lines(&session.id).await.unwrap()[5].line_no,
        5
    );
}

#[tokio::test]
async fn appending_to_a_missing_session_or_one_of_another_room_is_not_found() {
    let (_database, db) = fresh_db().await;
    let (room, session) = running_room(&db, "standup").await;
    let (other_room, _) = running_room(&db, "other").await;
    let line = [said("alice", 0, "Hello.")];
    let missing = RoomSessionId::parse("rsess_missing").unwrap();
    let error = db
        .append_room_transcript_lines(&missing, &room.id, &line)
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let error = db
        .append_room_transcript_lines(&session.id, &other_room.id, &line)
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert!(db.room_transcript_lines(&missing).await.unwrap().is_empty());
    assert!(db
        .room_transcript_lines(&session.id)
        .await
        .unwrap()
        .is_empty());

    // A room deleted while its session ran took the session along.
    db.delete_room(&room.id).await.unwrap();
    assert!(db
        .append_room_transcript_lines(&session.id, &room.id, &line)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn concurrent_appends_to_a_session_number_every_line_once() {
    let (_database, db) = fresh_db().await;
    let (room, session) = running_room(&db, "standup").await;
    let appends = (0..8_i64).map(|speaker| {
        let db = db.clone();
        let (room, session) = (room.id.clone(), session.id.clone());
        tokio::spawn(async move {
            let lines: Vec<_> = (0..5)
                .map(|n| said(&format!("p{speaker}"), n * 1_000, "word"))
                .collect();
            db.append_room_transcript_lines(&session, &room, &lines)
                .await
        })
    });
    for append in appends {
        assert_eq!(append.await.unwrap().unwrap(), 5);
    }
    let lines = db.room_transcript_lines(&session.id).await.unwrap();
    let numbers: HashSet<_> = lines.iter().map(|line| line.line_no).collect();
    assert_eq!(numbers, (0..40).collect());
    // Each call's lines were numbered together, in the order given.
    for speaker in 0..8 {
        let mine: Vec<_> = lines
            .iter()
            .filter(|line| line.participant_identity == format!("p{speaker}"))
            .map(|line| line.line_no)
            .collect();
        assert_eq!(mine.len(), 5);
        assert!(
            mine.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "{mine:?}"
        );
    }
}

#[tokio::test]
async fn search_finds_a_line_by_its_words_in_any_form_with_who_said_it() {
    let (_database, db) = fresh_db().await;
    let (room, session) = running_room(&db, "standup").await;
    db.append_room_transcript_lines(
        &session.id,
        &room.id,
        &[
            said("alice", 0, "Good morning everyone."),
            said("bob", 1_000, "The budget for next quarter is ready."),
            said("alice", 3_000, "Who is reviewing it?"),
        ],
    )
    .await
    .unwrap();
    let hits = db.search_room_transcripts("budgets", 10).await.unwrap();
    assert_eq!(
        hits,
        [RoomSearchHit {
            room_id: room.id.clone(),
            session_id: session.id.clone(),
            participant_identity: "bob".to_owned(),
            participant_name: "bob (name)".to_owned(),
            start_ms: 1_000,
            end_ms: 2_000,
            text: "The budget for next quarter is ready.".to_owned(),
        }]
    );
    // Every word is needed, in any order and case, in any of their English forms.
    assert_eq!(
        texts(
            &db.search_room_transcripts("QUARTERS Budget", 10)
                .await
                .unwrap()
        ),
        ["The budget for next quarter is ready."]
    );
    assert_eq!(
        texts(&db.search_room_transcripts("reviewed", 10).await.unwrap()),
        ["Who is reviewing it?"]
    );
    assert!(db
        .search_room_transcripts("budget morning", 10)
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .search_room_transcripts("invoice", 10)
        .await
        .unwrap()
        .is_empty());
    // Lines appended later are found too.
    db.append_room_transcript_lines(&session.id, &room.id, &[said("carol", 9_000, "Budgeting")])
        .await
        .unwrap();
    assert_eq!(
        db.search_room_transcripts("budget", 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn search_puts_the_best_match_first_and_returns_at_most_the_limit() {
    let (_database, db) = fresh_db().await;
    let (room, session) = running_room(&db, "standup").await;
    db.append_room_transcript_lines(
        &session.id,
        &room.id,
        &[
            said(
                "alice",
                0,
                "a long line that mentions the roadmap once among many other words",
            ),
            said("bob", 1_000, "roadmap roadmap roadmap"),
            said("carol", 2_000, "nothing here"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        texts(&db.search_room_transcripts("roadmap", 10).await.unwrap()),
        [
            "roadmap roadmap roadmap",
            "a long line that mentions the roadmap once among many other words",
        ]
    );

    let lines: Vec<_> = (0..150).map(|n| said("dan", n * 1_000, "drums")).collect();
    db.append_room_transcript_lines(&session.id, &room.id, &lines)
        .await
        .unwrap();
    assert_eq!(
        db.search_room_transcripts("drums", 1_000)
            .await
            .unwrap()
            .len(),
        100
    );
    let seven = db.search_room_transcripts("drums", 7).await.unwrap();
    // Equal matches come by time.
    assert_eq!(
        seven.iter().map(|hit| hit.start_ms).collect::<Vec<_>>(),
        [0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000]
    );
    assert_eq!(
        db.search_room_transcripts("drums", 0).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_search_never_finds_the_lines_of_a_deleted_rooms_sessions() {
    let (_database, db) = fresh_db().await;
    let (kept_room, kept) = running_room(&db, "kept").await;
    let (deleted_room, deleted) = running_room(&db, "deleted").await;
    let earlier = db.start_room_session(&deleted_room.id, NODE).await.unwrap();
    db.append_room_transcript_lines(&kept.id, &kept_room.id, &[said("a", 0, "budget kept")])
        .await
        .unwrap();
    for session in [&deleted, &earlier] {
        db.append_room_transcript_lines(
            &session.id,
            &deleted_room.id,
            &[said("b", 0, "budget deleted")],
        )
        .await
        .unwrap();
    }
    assert_eq!(
        db.search_room_transcripts("budget", 10)
            .await
            .unwrap()
            .len(),
        3
    );

    db.delete_room(&deleted_room.id).await.unwrap();
    let hits = db.search_room_transcripts("budget", 10).await.unwrap();
    assert_eq!(texts(&hits), ["budget kept"]);
    assert_eq!(hits[0].session_id, kept.id);
    for session in [&deleted, &earlier] {
        assert!(db
            .room_transcript_lines(&session.id)
            .await
            .unwrap()
            .is_empty());
    }
    // A room of the same name starts over.
    let (again_room, again) = running_room(&db, "deleted").await;
    db.append_room_transcript_lines(&again.id, &again_room.id, &[said("c", 0, "budget again")])
        .await
        .unwrap();
    let mut found = texts(&db.search_room_transcripts("budget", 10).await.unwrap())
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    found.sort();
    assert_eq!(found, ["budget again", "budget kept"]);
}

#[tokio::test]
async fn hostile_queries_never_fail() {
    let (_database, db) = fresh_db().await;
    let (room, session) = running_room(&db, "standup").await;
    db.append_room_transcript_lines(
        &session.id,
        &room.id,
        &[
            said("a", 0, "Please drop the table; then near the door."),
            said("b", 1_000, "Café au lait in 東京, naïve and OR AND NOT."),
        ],
    )
    .await
    .unwrap();
    let long = "lorem ipsum \"dolor\" (sit) * amet; ".repeat(300);
    for query in [
        "",
        "\"",
        "'; DROP TABLE room_transcript_lines;--",
        "NEAR(drop table, 2)",
        "drop*",
        "a OR",
        "NOT",
        "-drop",
        "session_id : \"x\"",
        "{text} : drop",
        "^drop",
        "(((",
        "\u{0}",
        "🎉🎉",
        &long,
    ] {
        let hits = db
            .search_room_transcripts(query, 10)
            .await
            .unwrap_or_else(|e| panic!("{query:?}: {e}"));
        assert!(hits.len() <= 2, "{query:?}");
    }
    for empty in ["", "   ", "\"", "*", "(((", "🎉🎉", "-- ;"] {
        assert!(
            db.search_room_transcripts(empty, 10)
                .await
                .unwrap()
                .is_empty(),
            "{empty:?} holds no word"
        );
    }
    assert_eq!(
        texts(
            &db.search_room_transcripts("'; drop table;--", 10)
                .await
                .unwrap()
        ),
        ["Please drop the table; then near the door."]
    );
    assert_eq!(
        texts(&db.search_room_transcripts("café 東京", 10).await.unwrap()),
        ["Café au lait in 東京, naïve and OR AND NOT."]
    );
}

#[tokio::test]
async fn a_session_keeps_at_most_its_first_max_transcript_lines() {
    let (_database, db) = fresh_db().await;
    let (room, session) = running_room(&db, "marathon").await;
    let line = |n: usize| said("alice", i64::try_from(n).unwrap() * 10, "la");
    let almost: Vec<_> = (0..MAX_TRANSCRIPT_LINES - 2).map(line).collect();
    assert_eq!(
        db.append_room_transcript_lines(&session.id, &room.id, &almost)
            .await
            .unwrap(),
        u64::try_from(MAX_TRANSCRIPT_LINES - 2).unwrap()
    );
    let past: Vec<_> = (MAX_TRANSCRIPT_LINES - 2..MAX_TRANSCRIPT_LINES + 3)
        .map(line)
        .collect();
    assert_eq!(
        db.append_room_transcript_lines(&session.id, &room.id, &past)
            .await
            .unwrap(),
        2,
        "only the lines that fit"
    );
    assert_eq!(
        db.append_room_transcript_lines(&session.id, &room.id, &[line(0)])
            .await
            .unwrap(),
        0,
        "a full session takes no more"
    );
    let stored = db.room_transcript_lines(&session.id).await.unwrap();
    assert_eq!(stored.len(), MAX_TRANSCRIPT_LINES);
    let last = stored.last().unwrap();
    assert_eq!(
        (last.line_no, last.start_ms),
        (
            u32::try_from(MAX_TRANSCRIPT_LINES - 1).unwrap(),
            past[1].start_ms
        )
    );
    // Another session of the room has a cap of its own.
    db.end_room_session(&session.id).await.unwrap();
    let next = db.start_room_session(&room.id, NODE).await.unwrap();
    assert_eq!(
        db.append_room_transcript_lines(&next.id, &room.id, &[line(0)])
            .await
            .unwrap(),
        1
    );
}
