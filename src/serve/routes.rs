//! The HTTP routes of `banditflow serve`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use banditflow_client::produce::Outcome;
use banditflow_client::{growthbook, AssignError};
use banditflow_core::time::now_ms;
use serde::Deserialize;
use serde_json::json;

use super::Service;

/// Every route.
pub(crate) fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/assign", get(assign))
        .route("/outcome", post(outcome))
        .route("/weights/{entity}", get(weights))
        .route("/api/features/{key}", get(features))
        .route("/metrics", get(metrics))
        .route("/readyz", get(ready))
        .with_state(service)
}

#[derive(Deserialize)]
struct AssignQuery {
    entity: String,
    unit: String,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// `GET /assign?entity=E&unit=U`: the assignment, produced to the assignments topic.
async fn assign(State(service): State<Arc<Service>>, Query(query): Query<AssignQuery>) -> Response {
    match service.assigner.assign(&query.entity, &query.unit) {
        Ok(assignment) => {
            if let Some(producer) = &service.producer {
                if let Err(e) = producer.assignment(&assignment) {
                    tracing::warn!(error = %e, "cannot produce an assignment");
                    service.produce_failures.inc();
                }
            }
            Json(assignment).into_response()
        }
        Err(e @ (AssignError::UnknownEntity(_) | AssignError::NoArms(_))) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ AssignError::EmptyUnit) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct OutcomeBody {
    assignment_id: String,
    kind: Option<String>,
    ts: Option<i64>,
}

/// `POST /outcome` with `{"assignment_id": …, "kind": …}` (`ts` optional, default now).
async fn outcome(State(service): State<Arc<Service>>, Json(body): Json<OutcomeBody>) -> Response {
    let Some(producer) = &service.producer else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the job file has no [kafka] to produce outcomes to");
    };
    if body.assignment_id.is_empty() {
        return error(StatusCode::BAD_REQUEST, "assignment_id is empty");
    }
    let outcome = Outcome { assignment_id: body.assignment_id, ts: body.ts.unwrap_or_else(now_ms), kind: body.kind };
    match producer.outcome(&outcome) {
        Ok(()) => (StatusCode::ACCEPTED, Json(outcome)).into_response(),
        Err(e) => {
            service.produce_failures.inc();
            error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
}

/// `GET /weights/{entity}`: the record the cache holds.
async fn weights(State(service): State<Arc<Service>>, Path(entity): Path<String>) -> Response {
    match service.assigner.cache().get(&entity) {
        Some(cached) => Json(cached.record.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no weights for entity {entity:?}")),
    }
}

/// `GET /api/features/{client_key}`: the GrowthBook SDK payload of every entity (the key is
/// not checked: one service serves one job).
async fn features(State(service): State<Arc<Service>>, Path(_key): Path<String>) -> Response {
    let mut entities = service.assigner.cache().entities();
    entities.extend(service.declared.iter().cloned());
    entities.sort_unstable();
    entities.dedup();
    Json(growthbook::payload(&service.assigner, &entities, now_ms())).into_response()
}

/// `GET /readyz`: 200 once the first full load of the weights is done.
async fn ready(State(service): State<Arc<Service>>) -> Response {
    if service.progress.loaded() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "loading the weights\n").into_response()
    }
}

/// `GET /metrics`: the serving counters and the cache's state, for Prometheus.
async fn metrics(State(service): State<Arc<Service>>) -> Response {
    use prometheus::Encoder as _;
    let mut families = service.registry.gather();
    let cache = service.assigner.cache();
    let (kept, older, unreadable, reconnects) = service.progress.counts();
    let age = cache.pipeline_age_ms(now_ms());
    let gauges = [
        ("banditflow_serving_cache_entities", "Entities in the weights cache.", cache.len() as f64),
        ("banditflow_serving_pipeline_age_seconds", "Time since the pipeline last published a record (its newest computed_at); -1 before any.", if age == i64::MAX { -1.0 } else { age as f64 / 1000.0 }),
        ("banditflow_serving_loaded", "1 once the first full load of the weights is done.", f64::from(u8::from(service.progress.loaded()))),
    ];
    for (name, help, value) in gauges {
        if let Ok(gauge) = prometheus::Gauge::new(name, help) {
            gauge.set(value);
            families.extend(prometheus::core::Collector::collect(&gauge));
        }
    }
    // The follower's counts, as counters (read from its progress at each scrape).
    let counters = [
        ("banditflow_serving_records_kept_total", "Weight records the cache kept.", kept),
        ("banditflow_serving_records_older_total", "Weight records ignored as older than the one held.", older),
        ("banditflow_serving_records_unreadable_total", "Weight records that did not parse.", unreadable),
        ("banditflow_serving_reconnects_total", "Times the follower lost its source and connected again.", reconnects),
    ];
    for (name, help, value) in counters {
        if let Ok(counter) = prometheus::IntCounter::new(name, help) {
            counter.inc_by(value);
            families.extend(prometheus::core::Collector::collect(&counter));
        }
    }
    let mut body = Vec::new();
    match prometheus::TextEncoder::new().encode(&families, &mut body) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
