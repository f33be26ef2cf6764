//! Following Redis: load every record under the prefix, then follow `{prefix}:updates`
//! (the worker publishes an entity's id there after each write) and read the key it names.
//! It subscribes before it loads, so no update falls between the two; after a lost
//! connection (a Redis restart) it subscribes and loads again. A key under the prefix that
//! is not `{prefix}:{entity_id}` of the record it holds (a shadow worker's
//! `{prefix}:shadow:…`, a sticky store's hashes, anything else) is passed over.

use std::sync::Arc;

use futures_util::StreamExt as _;
use redis::AsyncCommands as _;

use super::{backoff, Progress};
use crate::cache::WeightsCache;

/// Follows the records under `prefix` at `client`'s Redis into `cache`, forever.
pub async fn follow(client: redis::Client, prefix: String, cache: Arc<WeightsCache>, progress: Arc<Progress>) {
    let mut failures = 0;
    loop {
        let (error, loaded) = session(&client, &prefix, &cache, &progress).await;
        tracing::warn!(%error, prefix = %prefix, "lost the Redis weights: connecting again");
        progress.reconnected();
        // A session that got as far as following starts the backoff again from its shortest.
        failures = if loaded { 0 } else { (failures + 1).min(16) };
        tokio::time::sleep(backoff(failures)).await;
    }
}

/// Reads `key` and offers what it holds if it is the record of the entity the key names.
async fn load(connection: &mut redis::aio::MultiplexedConnection, key: &str, entity: &str, cache: &WeightsCache, progress: &Progress) -> Result<(), redis::RedisError> {
    match connection.get::<_, Option<Vec<u8>>>(key).await {
        Ok(Some(value)) => {
            progress.offer_for(cache, &value, key, Some(entity));
            Ok(())
        }
        Ok(None) => Ok(()),
        // Not a string (a sticky store's hash, say): not a weight record.
        Err(e) if e.kind() == redis::ErrorKind::TypeError || e.code() == Some("WRONGTYPE") => Ok(()),
        Err(e) => Err(e),
    }
}

/// One connection's life: subscribe, load, follow until the connection breaks. Returns why
/// it ended, and whether it got as far as following.
async fn session(client: &redis::Client, prefix: &str, cache: &WeightsCache, progress: &Progress) -> (redis::RedisError, bool) {
    let updates = format!("{prefix}:updates");
    let mut pubsub = match client.get_async_pubsub().await {
        Ok(p) => p,
        Err(e) => return (e, false),
    };
    if let Err(e) = pubsub.subscribe(&updates).await {
        return (e, false);
    }
    let mut connection = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => return (e, false),
    };
    let keys: Vec<String> = match connection.scan_match::<_, String>(format!("{}:*", glob_escape(prefix))).await {
        Ok(iter) => iter.collect().await,
        Err(e) => return (e, false),
    };
    let head = format!("{prefix}:");
    for key in keys.iter().filter(|k| **k != updates) {
        let entity = key.strip_prefix(&head).unwrap_or_default();
        if let Err(e) = load(&mut connection, key, entity, cache, progress).await {
            return (e, false);
        }
    }
    progress.set_loaded();
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let entity: String = match message.get_payload() {
            Ok(entity) => entity,
            Err(e) => return (e, true),
        };
        if let Err(e) = load(&mut connection, &format!("{head}{entity}"), &entity, cache, progress).await {
            return (e, true);
        }
    }
    (redis::RedisError::from((redis::ErrorKind::IoError, "the subscription ended")), true)
}

/// `text` with Redis glob characters escaped, to match it literally.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(super::glob_escape("bf"), "bf");
        assert_eq!(super::glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
