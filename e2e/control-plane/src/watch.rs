//! Watch streams: initial state, ordered events from the store's history, selector
//! transitions, bookmarks, timeouts and `410 Gone` for compacted resourceVersions.
//!
//! A watcher holds no queue of its own: it reads the shared, bounded history from its cursor
//! whenever the store's resourceVersion advances, so a dropped client simply stops reading.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::app::App;
use crate::convert::present;
use crate::list::{ListQuery, parse_rv};
use crate::registry::ResourceInfo;
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::{Event, EventType, Key};
use crate::table::{self, Output};

/// How often an idle watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

pub struct WatchRequest {
    pub namespace: Option<String>,
    pub query: ListQuery,
    pub send_initial_events: Option<bool>,
    pub allow_bookmarks: bool,
    pub timeout: Option<Duration>,
    pub output: Output,
}

struct Watcher {
    app: Arc<App>,
    info: Arc<ResourceInfo>,
    req: WatchRequest,
    cursor: u64,
    pending: VecDeque<Bytes>,
    changes: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    deadline: Option<Instant>,
    next_bookmark: Instant,
    headers_sent: bool,
    done: bool,
}

fn validate(req: &WatchRequest) -> ApiResult<()> {
    if req.send_initial_events != Some(true) {
        return Ok(());
    }
    let mut causes = vec![];
    if req.query.resource_version_match.as_deref() != Some("NotOlderThan") {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message:
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
                    .into(),
            field: "resourceVersionMatch".into(),
        });
    }
    if !req.allow_bookmarks {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true"
                .into(),
            field: "allowWatchBookmarks".into(),
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", causes))
    }
}

/// Starts a watch; errors that precede the stream are returned as ordinary responses.
pub fn start(
    app: Arc<App>,
    info: Arc<ResourceInfo>,
    req: WatchRequest,
) -> ApiResult<impl Stream<Item = Result<Bytes, Infallible>>> {
    validate(&req)?;
    let changes = app.store.subscribe();
    let shutdown = app.shutdown.clone();
    let requested = match req.query.resource_version.as_deref() {
        None | Some("0") => None,
        Some(rv) => Some(parse_rv(rv)?),
    };
    let initial = match req.send_initial_events {
        Some(send) => send,
        None => requested.is_none(),
    };
    let mut w = Watcher {
        deadline: req.timeout.map(|t| Instant::now() + t),
        next_bookmark: Instant::now() + BOOKMARK_INTERVAL,
        app,
        info,
        req,
        cursor: 0,
        pending: VecDeque::new(),
        changes,
        shutdown,
        headers_sent: false,
        done: false,
    };
    if initial {
        let (objects, rv) = w
            .app
            .store
            .list(&w.info.storage, w.req.namespace.as_deref(), None)
            .map_err(|_| ApiError::internal("current state unavailable"))?;
        w.cursor = requested.map_or(rv, |r| r.max(rv));
        for (_, obj) in objects {
            let obj = present(&w.info, &obj);
            if w.req.query.matches(&obj) {
                w.push("ADDED", &obj);
            }
        }
        if w.req.send_initial_events == Some(true) {
            w.push_bookmark(true);
        }
    } else {
        w.cursor = requested.unwrap_or_else(|| w.app.store.current_rv());
    }
    w.collect();
    Ok(futures::stream::unfold(w, |mut w| async move {
        loop {
            if let Some(chunk) = w.pending.pop_front() {
                return Some((Ok(chunk), w));
            }
            if w.done || *w.shutdown.borrow() {
                return None;
            }
            let deadline = w.deadline;
            let bookmarks = w.req.allow_bookmarks;
            tokio::select! {
                changed = w.changes.changed() => match changed {
                    Ok(()) => w.collect(),
                    Err(_) => w.done = true,
                },
                _ = w.shutdown.changed() => w.done = true,
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => w.done = true,
                _ = tokio::time::sleep_until(w.next_bookmark), if bookmarks => {
                    w.push_bookmark(false);
                    w.next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                }
            }
        }
    }))
}

impl Watcher {
    fn in_scope(&self, key: &Key) -> bool {
        key.resource == self.info.storage
            && self
                .req
                .namespace
                .as_ref()
                .is_none_or(|ns| &key.namespace == ns)
    }

    /// Queues the events after the cursor, or the 410 error that ends the watch.
    fn collect(&mut self) {
        if self.done {
            return;
        }
        let result = self
            .app
            .store
            .events_after(self.cursor, |k| self.in_scope(k));
        match result {
            Ok((events, newest)) => {
                for ev in events {
                    self.push_event(&ev);
                }
                self.cursor = newest.max(self.cursor);
            }
            Err(c) => {
                let status = ApiError::expired(format!(
                    "too old resource version: {} ({})",
                    self.cursor, c.floor
                ))
                .to_status();
                self.pending
                    .push_back(line(json!({ "type": "ERROR", "object": status })));
                self.done = true;
            }
        }
    }

    fn push_event(&mut self, ev: &Event) {
        let obj = present(&self.info, &ev.object);
        let now = self.req.query.matches(&obj);
        let before = ev
            .prev
            .as_ref()
            .is_some_and(|p| self.req.query.matches(&present(&self.info, p)));
        let kind = match ev.kind {
            EventType::Added if now => "ADDED",
            EventType::Modified if now && before => "MODIFIED",
            EventType::Modified if now => "ADDED",
            // An object leaving the selection is gone as far as this watch is concerned.
            EventType::Modified if before => "DELETED",
            EventType::Deleted if before || now => "DELETED",
            _ => return,
        };
        self.push(kind, &obj);
    }

    fn push(&mut self, kind: &str, obj: &Value) {
        let rendered = match self.req.output {
            Output::Object => obj.clone(),
            Output::PartialMetadata => table::partial_metadata(obj),
            Output::Table => {
                let t = table::table(
                    &self.info,
                    std::slice::from_ref(obj),
                    json!({}),
                    !self.headers_sent,
                );
                self.headers_sent = true;
                t
            }
        };
        self.pending
            .push_back(line(json!({ "type": kind, "object": rendered })));
    }

    fn push_bookmark(&mut self, initial_events_end: bool) {
        let mut metadata = json!({ "resourceVersion": self.cursor.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object = json!({ "kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": metadata });
        self.pending
            .push_back(line(json!({ "type": "BOOKMARK", "object": object })));
    }
}

fn line(v: Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}
