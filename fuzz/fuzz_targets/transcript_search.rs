//! Arbitrary text as a transcript search (`GET /v1/search?q=`) against a real SQLite database
//! with its FTS5 index and one ready transcript: every query answers (hits or none), never an
//! FTS5 or SQL error, and every hit is a line of that transcript.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use sluice_media::Ladder;
use sluice_storage::{
    AssetInput, AssetSettings, Db, GeneratedSubtitles, LadderCodec, NewAsset, PlaybackPolicy,
    TranscriptLine,
};

/// The lines of the one transcript searched.
const LINES: [&str; 3] = [
    "Welcome to the garden show.",
    "Today we are planting tomatoes and sunflowers near the river.",
    "It's a \"well-known\" fact: 2 + 2 = 4, NEAR(x) OR y*.",
];

struct Searched {
    runtime: tokio::runtime::Runtime,
    db: Db,
    _dir: tempfile::TempDir,
}

fn searched() -> &'static Searched {
    static SEARCHED: OnceLock<Searched> = OnceLock::new();
    SEARCHED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a directory");
        let url = format!("sqlite://{}/fuzz.db?mode=rwc", dir.path().display());
        let db = runtime.block_on(async {
            let db = Db::connect(&url).await.expect("the database");
            db.migrate().await.expect("migrations");
            let asset = db
                .create_asset(&NewAsset {
                    input: AssetInput::Url {
                        url: "https://example.com/a.mp4".into(),
                    },
                    settings: Some(AssetSettings {
                        playback_policy: vec![PlaybackPolicy::Public],
                        ladder: Ladder::default(),
                        codecs: vec![LadderCodec::H264],
                        passthrough: None,
                        generated_subtitles: vec![GeneratedSubtitles {
                            language_code: "en".into(),
                            name: "English".into(),
                        }],
                    }),
                    playback_policies: vec![PlaybackPolicy::Public],
                })
                .await
                .expect("an asset");
            db.set_asset_ready(&asset.id, &json!([])).await.expect("ready");
            let track = db.transcripts_of(&asset.id).await.expect("tracks")[0].id.clone();
            let lines: Vec<TranscriptLine> = LINES
                .iter()
                .zip(0..)
                .map(|(text, n)| TranscriptLine {
                    start_ms: n * 1000,
                    end_ms: n * 1000 + 900,
                    text: (*text).to_owned(),
                })
                .collect();
            db.set_transcript_ready(&track, &lines).await.expect("lines");
            db
        });
        Searched {
            runtime,
            db,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    let searched = searched();
    let hits = searched
        .runtime
        .block_on(searched.db.search_transcripts(&query, 10))
        .unwrap_or_else(|e| panic!("search {query:?} failed: {e}"));
    for hit in hits {
        assert!(LINES.contains(&hit.text.as_str()), "{hit:?}");
    }
});
