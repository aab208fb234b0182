//! The durable job queue on a fresh database (SQLite, or Postgres when
//! `SLUICE_TEST_POSTGRES_URL` is set): enqueueing (idempotent while a job is active),
//! claiming under a lease, heartbeats with progress, takeover of a job whose lease expired
//! (after which the old holder changes nothing), retries with backoff, final failure,
//! cancellation, and several processes claiming at once each getting distinct jobs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sluice_storage::test_support::TestDatabase;
use sluice_storage::{Db, Job, JobStatus, NewJob};
use tokio::sync::Barrier;

const TRANSCODE: &str = "asset.transcode";
const LEASE: Duration = Duration::from_secs(60);
const SHORT_LEASE: Duration = Duration::from_millis(200);

async fn fresh_db() -> (TestDatabase, Db) {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    (database, db)
}

async fn transcode(db: &Db, asset_id: &str, max_attempts: u32) -> Job {
    db.enqueue_job(&NewJob {
        max_attempts,
        ..NewJob::new(TRANSCODE, asset_id, json!({ "asset_id": asset_id }))
    })
    .await
    .unwrap()
}

async fn job(db: &Db, id: &str) -> Job {
    db.get_job(id).await.unwrap().expect("job exists")
}

#[tokio::test]
async fn a_job_is_claimed_heartbeaten_and_completed() {
    let (_database, db) = fresh_db().await;
    let queued = transcode(&db, "asset_1", 3).await;
    assert!(queued.id.starts_with("job_"));
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.attempts, 0);
    assert_eq!(queued.payload, json!({ "asset_id": "asset_1" }));

    assert_eq!(
        db.claim_job("worker-a", &["other.kind"], LEASE)
            .await
            .unwrap(),
        None,
        "a worker only gets the kinds it asks for"
    );
    let claimed = db
        .claim_job("worker-a", &[TRANSCODE], LEASE)
        .await
        .unwrap()
        .expect("the queued job is due");
    assert_eq!(claimed.id, queued.id);
    assert_eq!(claimed.status, JobStatus::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("worker-a"));
    let lease_until = claimed.lease_until.expect("a running job has a lease");
    assert!(lease_until > Utc::now() + chrono::Duration::seconds(50));
    assert!(claimed.heartbeat_at.is_some());

    assert!(db
        .heartbeat_job(&claimed.id, "worker-a", LEASE, Some(40))
        .await
        .unwrap());
    let beaten = job(&db, &claimed.id).await;
    assert_eq!(beaten.progress, 40);
    assert!(beaten.lease_until.unwrap() >= lease_until);
    assert!(db
        .heartbeat_job(&claimed.id, "worker-a", LEASE, Some(250))
        .await
        .unwrap());
    assert_eq!(
        job(&db, &claimed.id).await.progress,
        100,
        "progress is capped"
    );
    assert!(db
        .heartbeat_job(&claimed.id, "worker-a", LEASE, None)
        .await
        .unwrap());
    assert_eq!(
        job(&db, &claimed.id).await.progress,
        100,
        "no progress keeps it"
    );

    let output = json!({ "renditions": ["360p", "720p"] });
    assert!(db
        .complete_job(&claimed.id, "worker-a", &output)
        .await
        .unwrap());
    let done = job(&db, &claimed.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(output));
    assert_eq!(done.progress, 100);
    assert_eq!(done.lease_until, None);
    assert!(done.finished_at.is_some());
    assert_eq!(
        db.claim_job("worker-b", &[TRANSCODE], LEASE).await.unwrap(),
        None,
        "a succeeded job is never claimed again"
    );
    assert!(
        !db.heartbeat_job(&claimed.id, "worker-a", LEASE, Some(1))
            .await
            .unwrap(),
        "a finished job takes no heartbeats"
    );
    assert!(!db
        .complete_job(&claimed.id, "worker-a", &json!({}))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_dead_workers_job_is_taken_over_and_its_late_calls_change_nothing() {
    let (_database, db) = fresh_db().await;
    let queued = transcode(&db, "asset_1", 3).await;
    let first = db
        .claim_job("worker-a", &[TRANSCODE], SHORT_LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(db
        .heartbeat_job(&first.id, "worker-a", SHORT_LEASE, Some(30))
        .await
        .unwrap());
    assert_eq!(
        db.claim_job("worker-b", &[TRANSCODE], LEASE).await.unwrap(),
        None,
        "a leased job is not claimed by another worker"
    );

    tokio::time::sleep(SHORT_LEASE * 2).await;
    let second = db
        .claim_job("worker-b", &[TRANSCODE], LEASE)
        .await
        .unwrap()
        .expect("a job whose lease expired is claimable");
    assert_eq!(second.id, queued.id);
    assert_eq!(second.attempts, 2);
    assert_eq!(second.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(second.progress, 0, "the new attempt starts over");
    assert!(second
        .last_error
        .as_deref()
        .is_some_and(|error| error.contains("worker-a")));

    assert!(!db
        .heartbeat_job(&first.id, "worker-a", LEASE, Some(90))
        .await
        .unwrap());
    assert!(!db
        .complete_job(&first.id, "worker-a", &json!({ "by": "a" }))
        .await
        .unwrap());
    assert!(!db
        .fail_job(&first.id, "worker-a", "late failure", Some(Duration::ZERO))
        .await
        .unwrap());
    assert_eq!(
        job(&db, &first.id).await,
        second,
        "the old holder changed nothing"
    );

    assert!(db
        .complete_job(&second.id, "worker-b", &json!({ "by": "b" }))
        .await
        .unwrap());
    let done = job(&db, &first.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({ "by": "b" })));
    assert_eq!(done.lease_owner.as_deref(), Some("worker-b"));
}

#[tokio::test]
async fn a_failed_attempt_is_retried_after_its_backoff_until_attempts_run_out() {
    let (_database, db) = fresh_db().await;
    let queued = transcode(&db, "asset_1", 2).await;
    let first = db
        .claim_job("worker-a", &[TRANSCODE], LEASE)
        .await
        .unwrap()
        .unwrap();
    let backoff = Duration::from_millis(300);
    assert!(db
        .fail_job(&first.id, "worker-a", "decoder crashed", Some(backoff))
        .await
        .unwrap());
    let waiting = job(&db, &queued.id).await;
    assert_eq!(waiting.status, JobStatus::Queued);
    assert!(waiting.run_after > Utc::now());
    assert_eq!(waiting.lease_owner, None);
    assert_eq!(waiting.lease_until, None);
    assert_eq!(waiting.last_error.as_deref(), Some("decoder crashed"));
    assert_eq!(
        db.claim_job("worker-b", &[TRANSCODE], LEASE).await.unwrap(),
        None,
        "not claimable before its backoff has passed"
    );

    tokio::time::sleep(backoff + Duration::from_millis(100)).await;
    let second = db
        .claim_job("worker-b", &[TRANSCODE], LEASE)
        .await
        .unwrap()
        .expect("claimable once its backoff has passed");
    assert_eq!(second.attempts, 2);
    assert!(db
        .fail_job(
            &second.id,
            "worker-b",
            "decoder crashed again",
            Some(backoff)
        )
        .await
        .unwrap());
    let failed = job(&db, &queued.id).await;
    assert_eq!(failed.status, JobStatus::Failed, "no attempts left");
    assert_eq!(failed.last_error.as_deref(), Some("decoder crashed again"));
    assert!(failed.finished_at.is_some());
    tokio::time::sleep(backoff + Duration::from_millis(100)).await;
    assert_eq!(
        db.claim_job("worker-c", &[TRANSCODE], LEASE).await.unwrap(),
        None
    );

    // A failure without a retry is final even with attempts left.
    let other = transcode(&db, "asset_2", 5).await;
    let claimed = db
        .claim_job("worker-a", &[TRANSCODE], LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, other.id);
    assert!(db
        .fail_job(&other.id, "worker-a", "input is not a video", None)
        .await
        .unwrap());
    assert_eq!(job(&db, &other.id).await.status, JobStatus::Failed);
}

#[tokio::test]
async fn enqueueing_is_idempotent_while_a_job_is_active_and_cancel_stops_it() {
    let (_database, db) = fresh_db().await;
    let first = transcode(&db, "asset_1", 3).await;
    assert_eq!(
        transcode(&db, "asset_1", 3).await.id,
        first.id,
        "while queued"
    );
    let other_kind = db
        .enqueue_job(&NewJob::new("asset.thumbnail", "asset_1", json!({})))
        .await
        .unwrap();
    assert_ne!(other_kind.id, first.id, "one active job per kind");
    let claimed = db
        .claim_job("worker-a", &[TRANSCODE], LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        transcode(&db, "asset_1", 3).await.id,
        first.id,
        "while running"
    );

    assert_eq!(db.cancel_jobs_for("asset_1").await.unwrap(), 2);
    assert_eq!(db.cancel_jobs_for("asset_1").await.unwrap(), 0);
    let cancelled = job(&db, &claimed.id).await;
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
    assert!(
        !db.heartbeat_job(&claimed.id, "worker-a", LEASE, Some(50))
            .await
            .unwrap(),
        "the worker learns the job was cancelled"
    );
    assert!(!db
        .complete_job(&claimed.id, "worker-a", &json!({}))
        .await
        .unwrap());
    assert_eq!(job(&db, &claimed.id).await.status, JobStatus::Cancelled);
    assert_eq!(
        db.claim_job("worker-b", &[TRANSCODE, "asset.thumbnail"], LEASE)
            .await
            .unwrap(),
        None,
        "cancelled jobs are never claimed"
    );

    let again = transcode(&db, "asset_1", 3).await;
    assert_ne!(
        again.id, first.id,
        "a finished job does not block a new one"
    );
    let history: Vec<String> = db
        .jobs_for_subject("asset_1")
        .await
        .unwrap()
        .into_iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(history, [first.id, other_kind.id, again.id]);
    assert!(db.get_job("job_missing").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_of_one_job_make_one_row() {
    let (database, db) = fresh_db().await;
    let callers = 4;
    let start = Arc::new(Barrier::new(callers));
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let caller_db = Db::connect(database.url()).await.unwrap();
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            transcode(&caller_db, "asset_1", 3).await.id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "every caller got the same job: {ids:?}");
    assert_eq!(db.jobs_for_subject("asset_1").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_workers_each_claim_a_distinct_job() {
    let (database, db) = fresh_db().await;
    let mut queued = Vec::new();
    for n in 0..6 {
        queued.push(transcode(&db, &format!("asset_{n}"), 3).await.id);
    }
    let workers = 4;
    let start = Arc::new(Barrier::new(workers));
    let mut tasks = Vec::new();
    for n in 0..workers {
        // Each worker has a connection of its own, as separate processes would.
        let worker_db = Db::connect(database.url()).await.unwrap();
        let worker_id = format!("worker-{n}");
        let start = Arc::clone(&start);
        let all_jobs = queued.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut done = Vec::new();
            while let Some(job) = worker_db
                .claim_job(&worker_id, &[TRANSCODE], LEASE)
                .await
                .unwrap()
            {
                assert_eq!(job.lease_owner.as_deref(), Some(worker_id.as_str()));
                // Hold the job a while, so that the workers' claims overlap.
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert!(worker_db
                    .complete_job(&job.id, &worker_id, &json!({ "by": worker_id }))
                    .await
                    .unwrap());
                done.push(job.id);
            }
            // A claim finds nothing only once every job has been taken (none goes back to
            // the queue here, so none may stay queued after that). On Postgres a job another
            // claimer holds locked but has not marked yet is skipped: it leaves the queue as
            // soon as that claim commits.
            for id in &all_jobs {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while worker_db.get_job(id).await.unwrap().unwrap().status == JobStatus::Queued {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{worker_id} found no job but {id} stayed queued"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            done
        }));
    }
    let mut claims: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        for id in task.await.unwrap() {
            *claims.entry(id).or_default() += 1;
        }
    }
    assert_eq!(
        claims.len(),
        queued.len(),
        "every job was claimed: {claims:?}"
    );
    assert!(claims.values().all(|&count| count == 1), "{claims:?}");
    for id in &queued {
        let done = job(&db, id).await;
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.attempts, 1);
    }
}

#[tokio::test]
async fn a_job_whose_worker_dies_on_every_attempt_fails_instead_of_running_forever() {
    let (_database, db) = fresh_db().await;
    let queued = transcode(&db, "asset_crash", 2).await;
    for worker in ["worker-a", "worker-b"] {
        let claimed = db
            .claim_job(worker, &[TRANSCODE], SHORT_LEASE)
            .await
            .unwrap()
            .expect("claimable while attempts remain");
        assert_eq!(claimed.id, queued.id);
        // The worker dies: no heartbeat, no outcome.
        tokio::time::sleep(SHORT_LEASE * 2).await;
    }
    assert_eq!(
        db.claim_job("worker-c", &[TRANSCODE], LEASE).await.unwrap(),
        None,
        "no attempt is left"
    );
    let failed = job(&db, &queued.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 2);
    assert!(failed.finished_at.is_some());
    assert!(failed
        .last_error
        .as_deref()
        .is_some_and(|error| error.contains("lease of worker worker-b expired")));
}
