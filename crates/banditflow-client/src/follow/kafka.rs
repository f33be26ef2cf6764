//! Following the weights topic: read every partition from the beginning, keeping the newest
//! version per entity, then follow. The topic is compacted by entity, so the read from the
//! beginning holds each entity's newest record; the cache ignores anything older it meets.
//! Partitions added to the topic later are not followed (restart the follower).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::{backoff, Progress};
use crate::cache::WeightsCache;

/// How long with nothing read counts as read to the end (tansu 0.6 reports partition ends
/// wrongly, so the ends fetched at the start cannot always be trusted).
const IDLE_IS_LOADED: Duration = Duration::from_secs(3);

/// Follows `topic` at `brokers` (librdkafka `properties` on top: security settings, say)
/// into `cache`, forever (librdkafka reconnects on its own; this only starts again if the
/// consumer cannot be made or the topic cannot be found).
pub async fn follow(brokers: String, properties: Vec<(String, String)>, topic: String, cache: Arc<WeightsCache>, progress: Arc<Progress>) {
    // A session ends only before it follows (once following, librdkafka reconnects by
    // itself), so failures in a row are failures to start.
    let mut failures = 0;
    loop {
        let error = session(&brokers, &properties, &topic, &cache, &progress).await;
        tracing::warn!(%error, %topic, "cannot follow the weights topic: trying again");
        progress.reconnected();
        tokio::time::sleep(backoff(failures)).await;
        failures = (failures + 1).min(16);
    }
}

async fn session(brokers: &str, properties: &[(String, String)], topic: &str, cache: &WeightsCache, progress: &Progress) -> KafkaError {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("group.id", "banditflow-serving").set("enable.auto.commit", "false").set("enable.partition.eof", "false");
    for (key, value) in properties {
        config.set(key, value);
    }
    let consumer: Arc<StreamConsumer> = match config.create() {
        Ok(c) => Arc::new(c),
        Err(e) => return e,
    };
    // The look-ups block: off the runtime's threads.
    let (looking, name) = (consumer.clone(), topic.to_owned());
    let looked_up = tokio::task::spawn_blocking(move || -> Result<(Vec<(i32, i64)>, TopicPartitionList), KafkaError> {
        let metadata = looking.fetch_metadata(Some(&name), Duration::from_secs(10))?;
        // A topic not there (yet): no partitions to follow; try again later.
        let known = metadata.topics().iter().any(|t| t.error().is_none() && !t.partitions().is_empty());
        if !known {
            return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition));
        }
        let mut list = TopicPartitionList::new();
        let mut ends = Vec::new();
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            list.add_partition_offset(&name, p.id(), Offset::Beginning)?;
            let (_, high) = looking.fetch_watermarks(&name, p.id(), Duration::from_secs(10))?;
            ends.push((p.id(), high));
        }
        Ok((ends, list))
    })
    .await;
    let (ends, partitions) = match looked_up {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return e,
        Err(_) => return KafkaError::Canceled,
    };
    if let Err(e) = consumer.assign(&partitions) {
        return e;
    }
    // A live partition list keeps the client from closing: drop it once assigned.
    drop(partitions);
    let mut behind: Vec<(i32, i64)> = ends.into_iter().filter(|(_, end)| *end > 0).collect();
    if behind.is_empty() {
        progress.set_loaded();
    }
    loop {
        // Loaded once every partition is read to where its end was at the start, or (a broker
        // may report a wrong end) once nothing has come for a few seconds.
        let Ok(received) = tokio::time::timeout(IDLE_IS_LOADED, consumer.recv()).await else {
            progress.set_loaded();
            continue;
        };
        match received {
            Ok(message) => {
                if let Some(payload) = message.payload() {
                    progress.offer(cache, payload, topic);
                }
                if !behind.is_empty() {
                    behind.retain(|(p, end)| !(*p == message.partition() && message.offset() + 1 >= *end));
                    if behind.is_empty() {
                        progress.set_loaded();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, %topic, "reading the weights topic"),
        }
    }
}
