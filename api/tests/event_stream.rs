//! `GET /v1/events/stream` driven through the router: a reader that falls behind the in-process
//! channel, and events published concurrently (so broadcast out of order), still get every
//! event once and in order; the stream ends when the event bus closes.

mod common;

use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::http::{header, Request, StatusCode};
use futures_util::StreamExt;
use serde_json::json;
use sluice_storage::{Db, EventType, NewEvent};
use tower::ServiceExt;

use common::{harness, Harness};

/// More than the event bus keeps for a slow subscriber.
const MORE_THAN_THE_CHANNEL_HOLDS: usize = 1500;

/// Reads Server-Sent Events off a response body.
struct SseReader {
    body: BodyDataStream,
    buffer: String,
}

impl SseReader {
    async fn open(h: &Harness) -> SseReader {
        let response = h
            .app
            .clone()
            .oneshot(
                Request::get("/v1/events/stream")
                    .header(header::AUTHORIZATION, h.auth())
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        SseReader {
            body: response.into_body().into_data_stream(),
            buffer: String::new(),
        }
    }

    /// The id of the next event, or `None` when the stream ends.
    async fn next_id(&mut self) -> Option<String> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(id) = block.lines().find_map(|line| line.strip_prefix("id: ")) {
                    return Some(id.to_owned());
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event or the end of the stream within 10 s")?
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn next_ids(&mut self, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            ids.push(self.next_id().await.expect("the stream goes on"));
        }
        ids
    }
}

async fn all_event_ids(db: &Db) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = db.list_events(100, cursor.as_deref()).await.unwrap();
        ids.extend(page.items.into_iter().map(|event| event.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

fn event(n: usize) -> NewEvent {
    NewEvent::new(
        EventType::LiveStreamUpdated,
        &format!("ls_{n}"),
        json!({ "n": n }),
    )
}

#[tokio::test]
async fn a_reader_that_lagged_behind_the_channel_still_gets_every_event_in_order() {
    let h = harness().await;
    let mut reader = SseReader::open(&h).await;
    // Nothing is read while these are published: the reader's channel overflows.
    for n in 0..MORE_THAN_THE_CHANNEL_HOLDS {
        h.events.publish(event(n)).await.unwrap();
    }
    let published = all_event_ids(&h.db).await;
    assert_eq!(reader.next_ids(published.len()).await, published);
    h.events.publish(event(0)).await.unwrap();
    let newest = all_event_ids(&h.db).await.pop().unwrap();
    assert_eq!(reader.next_id().await.unwrap(), newest);
}

#[tokio::test]
async fn concurrently_published_events_arrive_once_and_in_order() {
    let h = harness().await;
    let mut reader = SseReader::open(&h).await;
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let events = h.events.clone();
            tokio::spawn(async move {
                for n in 0..50 {
                    events.publish(event(p * 100 + n)).await.unwrap();
                }
            })
        })
        .collect();
    let received = reader.next_ids(200).await;
    for publisher in publishers {
        publisher.await.unwrap();
    }
    assert_eq!(received, all_event_ids(&h.db).await);

    h.events.close();
    assert_eq!(reader.next_id().await, None, "the stream ends on shutdown");
}
