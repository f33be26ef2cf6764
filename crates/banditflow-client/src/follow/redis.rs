//! Following Redis: load every record under the prefix, then follow `{prefix}:updates`
//! (the worker publishes an entity's id there after each write) and read the key it names.
//! It subscribes before it loads, so no update falls between the two; after a lost
//! connection (a Redis restart) it subscribes and loads again.

use std::sync::Arc;

use futures_util::StreamExt as _;
use redis::AsyncCommands as _;

use super::{backoff, Progress};
use crate::cache::WeightsCache;

/// Follows the records under `prefix` at `client`'s Redis into `cache`, forever.
pub async fn follow(client: redis::Client, prefix: String, cache: Arc<WeightsCache>, progress: Arc<Progress>) {
    let mut failures = 0;
    loop {
        let error = session(&client, &prefix, &cache, &progress).await;
        tracing::warn!(%error, prefix = %prefix, "lost the Redis weights: connecting again");
        progress.reconnected();
        tokio::time::sleep(backoff(failures)).await;
        failures = (failures + 1).min(16);
    }
}

/// One connection's life: subscribe, load, follow until the connection breaks.
async fn session(client: &redis::Client, prefix: &str, cache: &WeightsCache, progress: &Progress) -> redis::RedisError {
    let updates = format!("{prefix}:updates");
    let mut pubsub = match client.get_async_pubsub().await {
        Ok(p) => p,
        Err(e) => return e,
    };
    if let Err(e) = pubsub.subscribe(&updates).await {
        return e;
    }
    let mut connection = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let keys: Vec<String> = match connection.scan_match::<_, String>(format!("{}:*", glob_escape(prefix))).await {
        Ok(iter) => iter.collect().await,
        Err(e) => return e,
    };
    for key in keys.iter().filter(|k| **k != updates) {
        match connection.get::<_, Option<Vec<u8>>>(key).await {
            Ok(Some(value)) => progress.offer(cache, &value, key),
            Ok(None) => {}
            Err(e) => return e,
        }
    }
    progress.set_loaded();
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let entity: String = match message.get_payload() {
            Ok(entity) => entity,
            Err(e) => return e,
        };
        let key = format!("{prefix}:{entity}");
        match connection.get::<_, Option<Vec<u8>>>(&key).await {
            Ok(Some(value)) => progress.offer(cache, &value, &key),
            Ok(None) => {}
            Err(e) => return e,
        }
    }
    redis::RedisError::from((redis::ErrorKind::IoError, "the subscription ended"))
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
