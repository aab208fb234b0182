//! The webhook outbox on a real SQLite file: deliveries queued atomically with their event,
//! claiming with leases, retry scheduling, attempts against their claim, replay (also while
//! an attempt is in flight) and deletion; and, on SQLite or Postgres, events recorded
//! concurrently read back in order.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;
use sluice_storage::test_support::TestDatabase;
use sluice_storage::{
    AttemptOutcome, ClaimedDelivery, Db, DeliveryStatus, Event, EventType, NewEvent,
    NewWebhookEndpoint, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEndpointUpdate,
};

const LEASE: Duration = Duration::from_secs(60);

async fn fresh_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&db_url(&dir)).await.unwrap();
    db.migrate().await.unwrap();
    (dir, db)
}

fn db_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/sluice.db?mode=rwc", dir.path().display())
}

async fn endpoint(db: &Db, event_types: &[&str]) -> WebhookEndpoint {
    db.create_webhook_endpoint(&NewWebhookEndpoint {
        url: "http://127.0.0.1:9/hook".to_owned(),
        event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
        description: None,
    })
    .await
    .unwrap()
}

async fn record(db: &Db, event_type: EventType, object_id: &str) -> String {
    db.record_event(&NewEvent::new(
        event_type,
        object_id,
        json!({ "id": object_id }),
    ))
    .await
    .unwrap()
    .id
}

async fn deliveries_of(db: &Db, endpoint: &WebhookEndpoint) -> Vec<(String, DeliveryStatus)> {
    db.list_webhook_deliveries(&endpoint.id, 100, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| (d.event_id, d.status))
        .collect()
}

/// The one delivery that becomes due within a few seconds, claimed.
async fn wait_for_claim(db: &Db, busy_endpoints: &[String]) -> ClaimedDelivery {
    for _ in 0..100 {
        let mut claimed = db
            .claim_due_webhook_deliveries(8, LEASE, busy_endpoints)
            .await
            .unwrap();
        if let Some(claim) = claimed.pop() {
            assert!(claimed.is_empty(), "more than one delivery due");
            return claim;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no delivery became due");
}

async fn delivery_of(db: &Db, claim: &ClaimedDelivery) -> WebhookDelivery {
    db.get_webhook_delivery(&claim.endpoint_id, &claim.delivery_id)
        .await
        .unwrap()
        .expect("the delivery exists")
}

/// The endpoint's one delivery.
async fn delivery_of_id(db: &Db, endpoint_id: &str) -> WebhookDelivery {
    let mut page = db
        .list_webhook_deliveries(endpoint_id, 100, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    page.items.pop().unwrap()
}

fn attempt(status_code: Option<u16>, error: Option<&str>) -> WebhookAttempt {
    WebhookAttempt {
        started_at: Utc::now(),
        duration_ms: 12,
        status_code,
        error: error.map(str::to_owned),
    }
}

#[tokio::test]
async fn events_queue_deliveries_only_for_enabled_endpoints_that_want_them() {
    let (_dir, db) = fresh_db().await;
    let all = endpoint(&db, &[]).await;
    assert!(all.id.starts_with("wh_"));
    assert!(all.secret.starts_with("whsec_"));
    assert!(all.enabled);
    let sessions_only = endpoint(&db, &["session.ended"]).await;
    let disabled = endpoint(&db, &[]).await;
    db.update_webhook_endpoint(
        &disabled.id,
        &WebhookEndpointUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let created = record(&db, EventType::LiveStreamCreated, "ls_1").await;
    let ended = record(&db, EventType::SessionEnded, "ses_1").await;

    assert_eq!(
        deliveries_of(&db, &all).await,
        vec![
            (created.clone(), DeliveryStatus::Pending),
            (ended.clone(), DeliveryStatus::Pending)
        ]
    );
    assert_eq!(
        deliveries_of(&db, &sessions_only).await,
        vec![(ended, DeliveryStatus::Pending)]
    );
    assert!(deliveries_of(&db, &disabled).await.is_empty());
}

#[tokio::test]
async fn an_event_whose_deliveries_cannot_be_queued_is_not_recorded() {
    let (dir, db) = fresh_db().await;
    endpoint(&db, &[]).await;
    // Break the endpoint's filter behind the repository's back: queueing must fail, and with
    // it the whole transaction, event included.
    let raw = Database::connect(db_url(&dir)).await.unwrap();
    raw.execute_unprepared("UPDATE webhook_endpoints SET event_types = 'not json'")
        .await
        .unwrap();
    assert!(db
        .record_event(&NewEvent::new(
            EventType::LiveStreamCreated,
            "ls_1",
            json!({})
        ))
        .await
        .is_err());
    assert!(db.list_events(10, None).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn claims_lease_one_delivery_per_endpoint_and_respect_retry_times() {
    let (_dir, db) = fresh_db().await;
    let first = endpoint(&db, &[]).await;
    let second = endpoint(&db, &[]).await;
    let second_busy = [second.id.clone()];
    let event_a = record(&db, EventType::LiveStreamCreated, "ls_a").await;
    let event_b = record(&db, EventType::LiveStreamCreated, "ls_b").await;

    // One per endpoint, the one due first; the busy endpoint is skipped.
    let claimed = db
        .claim_due_webhook_deliveries(8, LEASE, &second_busy)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let claim = &claimed[0];
    assert_eq!(claim.endpoint_id, first.id);
    assert_eq!(claim.event.id, event_a);
    assert_eq!(claim.secret, first.secret);
    assert_eq!(claim.url, first.url);
    assert_eq!(claim.attempt_count, 0);

    // Leased: not claimed twice.
    let others = db
        .claim_due_webhook_deliveries(8, LEASE, &[])
        .await
        .unwrap();
    assert_eq!(others.len(), 2);
    assert!(others.iter().all(|c| c.delivery_id != claim.delivery_id));
    db.release_webhook_leases(
        &others
            .iter()
            .map(|c| c.delivery_id.clone())
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();

    // A failed attempt scheduled later is not due; the next event of that endpoint is.
    db.record_webhook_attempt(
        claim,
        &attempt(Some(500), None),
        AttemptOutcome::RetryAt(Utc::now() + chrono::Duration::seconds(2)),
    )
    .await
    .unwrap();
    let due = db
        .claim_due_webhook_deliveries(8, LEASE, &second_busy)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].event.id, event_b);
    db.record_webhook_attempt(
        &due[0],
        &attempt(Some(204), None),
        AttemptOutcome::Delivered,
    )
    .await
    .unwrap();
    assert!(db
        .claim_due_webhook_deliveries(8, LEASE, &second_busy)
        .await
        .unwrap()
        .is_empty());

    // Due again once its retry time has come.
    let retry = wait_for_claim(&db, &second_busy).await;
    assert_eq!(retry.delivery_id, claim.delivery_id);
    assert_eq!(retry.attempt_count, 1);
    db.record_webhook_attempt(
        &retry,
        &attempt(None, Some("timed out")),
        AttemptOutcome::RetryAt(Utc::now()),
    )
    .await
    .unwrap();
    let retry = wait_for_claim(&db, &second_busy).await;
    assert_eq!(retry.delivery_id, claim.delivery_id);
    assert_eq!(retry.attempt_count, 2);
    db.record_webhook_attempt(&retry, &attempt(Some(503), None), AttemptOutcome::GiveUp)
        .await
        .unwrap();

    let delivery = db
        .get_webhook_delivery(&first.id, &claim.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(delivery.attempt_count, 3);
    assert_eq!(delivery.last_status_code, Some(503));
    assert_eq!(delivery.last_error, None);
    let outcomes: Vec<_> = delivery
        .attempts
        .iter()
        .map(|a| (a.status_code, a.error.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (Some(500), None),
            (None, Some("timed out")),
            (Some(503), None)
        ]
    );
    assert_eq!(delivery.attempts[0].duration_ms, 12);
    // Stored to the microsecond, like every timestamp.
    assert!(delivery
        .attempts
        .iter()
        .all(|a| a.started_at.timestamp_subsec_nanos() % 1000 == 0));
    let delivered = db
        .get_webhook_delivery(&first.id, &due[0].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert!(delivered.delivered_at.is_some());
    // Deliveries are only found under their own endpoint.
    assert!(db
        .get_webhook_delivery(&second.id, &claim.delivery_id)
        .await
        .unwrap()
        .is_none());

    // A replayed delivery is pending and due at once, whatever it was, with a fresh retry
    // schedule; its earlier attempts stay listed.
    let requeued = db
        .requeue_webhook_delivery(&first.id, &claim.delivery_id)
        .await
        .unwrap();
    assert_eq!(requeued.status, DeliveryStatus::Pending);
    assert_eq!(requeued.attempt_count, 0);
    assert!(!requeued.attempts.is_empty());
    let again = db
        .claim_due_webhook_deliveries(8, LEASE, &second_busy)
        .await
        .unwrap();
    assert_eq!(again[0].delivery_id, claim.delivery_id);
    assert_eq!(again[0].attempt_count, 0);
}

#[tokio::test]
async fn an_expired_lease_can_be_claimed_again() {
    let (_dir, db) = fresh_db().await;
    endpoint(&db, &[]).await;
    record(&db, EventType::LiveStreamCreated, "ls_1").await;
    let first = db
        .claim_due_webhook_deliveries(1, Duration::from_millis(1), &[])
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = db
        .claim_due_webhook_deliveries(1, LEASE, &[])
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].delivery_id, first[0].delivery_id);

    // The first claim is superseded: its late attempt is logged but settles nothing, and the
    // lease stays with the second claim.
    db.record_webhook_attempt(
        &first[0],
        &attempt(Some(200), None),
        AttemptOutcome::Delivered,
    )
    .await
    .unwrap();
    let delivery = delivery_of(&db, &second[0]).await;
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert_eq!(delivery.attempts.len(), 1);
    assert!(db
        .claim_due_webhook_deliveries(1, LEASE, &[])
        .await
        .unwrap()
        .is_empty());
    db.record_webhook_attempt(
        &second[0],
        &attempt(Some(204), None),
        AttemptOutcome::Delivered,
    )
    .await
    .unwrap();
    let delivery = delivery_of(&db, &second[0]).await;
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    assert_eq!(delivery.last_status_code, Some(204));
    assert_eq!(delivery.attempts.len(), 2);
}

#[tokio::test]
async fn a_requeue_while_an_attempt_is_in_flight_is_not_lost_nor_sent_concurrently() {
    let (_dir, db) = fresh_db().await;
    let hook = endpoint(&db, &[]).await;
    record(&db, EventType::LiveStreamCreated, "ls_1").await;
    for outcome in [
        AttemptOutcome::Delivered,
        AttemptOutcome::GiveUp,
        AttemptOutcome::RetryAt(Utc::now() + chrono::Duration::hours(1)),
    ] {
        let mut in_flight = db
            .claim_due_webhook_deliveries(1, LEASE, &[])
            .await
            .unwrap();
        let in_flight = in_flight.pop().expect("the delivery is due");

        // Replayed while being sent: pending again, but nobody else may send it meanwhile.
        let requeued = db
            .requeue_webhook_delivery(&hook.id, &in_flight.delivery_id)
            .await
            .unwrap();
        assert_eq!(requeued.status, DeliveryStatus::Pending);
        assert!(db
            .claim_due_webhook_deliveries(1, LEASE, &[])
            .await
            .unwrap()
            .is_empty());

        // The attempt in flight ends: logged, but the replay stands and is due at once.
        db.record_webhook_attempt(&in_flight, &attempt(Some(200), None), outcome)
            .await
            .unwrap();
        let delivery = delivery_of(&db, &in_flight).await;
        assert_eq!(delivery.status, DeliveryStatus::Pending, "{outcome:?}");
        assert_eq!(delivery.last_status_code, Some(200));

        let replay = db
            .claim_due_webhook_deliveries(1, LEASE, &[])
            .await
            .unwrap();
        assert_eq!(replay.len(), 1, "{outcome:?}: the replay is due");
        assert_eq!(replay[0].delivery_id, in_flight.delivery_id);
        db.record_webhook_attempt(
            &replay[0],
            &attempt(Some(204), None),
            AttemptOutcome::Delivered,
        )
        .await
        .unwrap();
        let delivery = delivery_of(&db, &in_flight).await;
        assert_eq!(delivery.status, DeliveryStatus::Delivered);
        assert_eq!(delivery.last_status_code, Some(204));
        db.requeue_webhook_delivery(&hook.id, &in_flight.delivery_id)
            .await
            .unwrap();
    }
    assert_eq!(delivery_of_id(&db, &hook.id).await.attempts.len(), 6);
}

/// Events recorded by many tasks at once are read back by a reader paging with cursors
/// meanwhile: each exactly once, in `seq` order. On Postgres (`SLUICE_TEST_POSTGRES_URL`) this
/// checks that an event never becomes visible before an earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrently_recorded_events_are_paged_each_once_in_order() {
    const WRITERS: usize = 8;
    const EVENTS_EACH: usize = 40;
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    // Deliveries are queued in the same transaction: give the recording some work to do.
    endpoint(&db, &[]).await;

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let db = db.clone();
            tokio::spawn(async move {
                for n in 0..EVENTS_EACH {
                    record(
                        &db,
                        EventType::LiveStreamUpdated,
                        &format!("ls_{writer}_{n}"),
                    )
                    .await;
                }
            })
        })
        .collect();
    let total = WRITERS * EVENTS_EACH;
    let mut seen: Vec<Event> = Vec::new();
    let mut cursor: Option<String> = None;
    // Page while the writers run, then once more after they are done to reach the end.
    let mut writers_done = false;
    loop {
        let page = db.list_events(7, cursor.as_deref()).await.unwrap();
        if let Some(last) = page.items.last() {
            cursor = Some(last.id.clone());
        } else if writers_done {
            break;
        } else {
            writers_done = writers.iter().all(tokio::task::JoinHandle::is_finished);
            tokio::task::yield_now().await;
        }
        seen.extend(page.items);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let all = db.events_after_seq(0, total as u64 + 1).await.unwrap();
    assert_eq!(all.len(), total);
    let seen_ids: Vec<&str> = seen.iter().map(|e| e.id.as_str()).collect();
    let all_ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    let missed = all_ids.iter().filter(|id| !seen_ids.contains(id)).count();
    assert!(
        seen_ids == all_ids,
        "the reader saw {} of {} events ({missed} skipped) or saw them out of order",
        seen_ids.len(),
        all_ids.len()
    );
    assert!(seen.windows(2).all(|pair| pair[0].seq < pair[1].seq));
}

#[tokio::test]
async fn disabled_endpoints_pending_deliveries_wait_and_deleted_ones_vanish() {
    let (_dir, db) = fresh_db().await;
    let hook = endpoint(&db, &[]).await;
    record(&db, EventType::LiveStreamCreated, "ls_1").await;
    let disable = WebhookEndpointUpdate {
        enabled: Some(false),
        ..Default::default()
    };
    db.update_webhook_endpoint(&hook.id, &disable)
        .await
        .unwrap();
    assert!(db
        .claim_due_webhook_deliveries(8, LEASE, &[])
        .await
        .unwrap()
        .is_empty());
    db.update_webhook_endpoint(
        &hook.id,
        &WebhookEndpointUpdate {
            enabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let claimed = db
        .claim_due_webhook_deliveries(8, LEASE, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    db.delete_webhook_endpoint(&hook.id).await.unwrap();
    assert!(db.get_webhook_endpoint(&hook.id).await.unwrap().is_none());
    // The delivery in flight is gone with its endpoint: its attempt has nothing to attach to.
    assert!(db
        .record_webhook_attempt(
            &claimed[0],
            &attempt(Some(200), None),
            AttemptOutcome::Delivered
        )
        .await
        .unwrap_err()
        .is_not_found());
    assert!(db
        .delete_webhook_endpoint(&hook.id)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn replaying_a_range_queues_the_matching_events_from_the_given_one() {
    let (_dir, db) = fresh_db().await;
    let hook = endpoint(&db, &["live_stream.created"]).await;
    let first = record(&db, EventType::LiveStreamCreated, "ls_1").await;
    let second = record(&db, EventType::LiveStreamCreated, "ls_2").await;
    record(&db, EventType::SessionEnded, "ses_1").await;
    let third = record(&db, EventType::LiveStreamCreated, "ls_3").await;
    let from = db.event_seq(&second).await.unwrap().unwrap();
    assert_eq!(db.replay_webhook_events(&hook.id, from).await.unwrap(), 2);
    let events: Vec<_> = deliveries_of(&db, &hook)
        .await
        .into_iter()
        .map(|(event, _)| event)
        .collect();
    assert_eq!(
        events,
        vec![first, second.clone(), third.clone(), second, third]
    );
    assert!(db
        .replay_webhook_events("wh_unknown", from)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn endpoints_are_updated_rotated_and_paged() {
    let (_dir, db) = fresh_db().await;
    let a = endpoint(&db, &[]).await;
    let b = endpoint(&db, &[]).await;
    let c = endpoint(&db, &[]).await;
    let page = db.list_webhook_endpoints(2, None).await.unwrap();
    assert_eq!(
        page.items.iter().map(|e| &e.id).collect::<Vec<_>>(),
        vec![&a.id, &b.id]
    );
    let rest = db
        .list_webhook_endpoints(2, page.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, c.id);
    assert!(rest.next_cursor.is_none());

    let updated = db
        .update_webhook_endpoint(
            &a.id,
            &WebhookEndpointUpdate {
                url: Some("https://example.com/hooks".to_owned()),
                event_types: Some(vec!["session.started".to_owned()]),
                enabled: None,
                description: Some(Some("prod".to_owned())),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.url, "https://example.com/hooks");
    assert_eq!(updated.event_types, vec!["session.started".to_owned()]);
    assert_eq!(updated.description.as_deref(), Some("prod"));
    assert!(updated.enabled);
    let rotated = db.rotate_webhook_secret(&a.id).await.unwrap();
    assert_ne!(rotated.secret, a.secret);
    assert!(rotated.secret.starts_with("whsec_"));
    assert!(db
        .update_webhook_endpoint("wh_unknown", &WebhookEndpointUpdate::default())
        .await
        .unwrap_err()
        .is_not_found());
}
