//! The Redis sink: `SET {prefix}:{entity_id}` only if the record's version is larger than
//! the stored one (atomically, in a Lua script), then `PUBLISH {prefix}:updates {entity_id}`.

use std::collections::HashMap;
use std::time::Duration;

use banditflow_core::record::EncodedRecord;

/// Sets `KEYS[1]` to `ARGV[2]` and publishes `ARGV[3]` on `KEYS[2]` only if the version stored
/// there is smaller than `ARGV[1]`; returns 1 if written.
const GUARDED_SET: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if ok and type(record) == 'table' and tonumber(record['version']) and tonumber(record['version']) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
";

/// Writes records to Redis under the version guard, then announces them.
pub struct RedisWriter {
    client: redis::Client,
    /// The connection and the SHA1 of the guard script loaded on it.
    connection: Option<(redis::Connection, String)>,
    prefix: String,
}

impl RedisWriter {
    /// Connects and loads the guard script (a restarted Redis has forgotten it, and a
    /// restart breaks the connection, so once per connection is enough).
    fn connect(&self) -> Result<(redis::Connection, String), redis::RedisError> {
        let mut connection = self.client.get_connection_with_timeout(Duration::from_secs(2))?;
        connection.set_read_timeout(Some(Duration::from_secs(5)))?;
        connection.set_write_timeout(Some(Duration::from_secs(5)))?;
        let sha = redis::cmd("SCRIPT").arg("LOAD").arg(GUARDED_SET).query(&mut connection)?;
        Ok((connection, sha))
    }

    /// Writes `batch` (the newest record of each entity) in one pipeline; on failure returns
    /// every record of it, to be retried (the guard makes a repeat harmless).
    pub fn write(&mut self, batch: Vec<EncodedRecord>) -> Result<(), (redis::RedisError, Vec<EncodedRecord>)> {
        let (connection, sha) = match self.connection.as_mut() {
            Some((c, sha)) => (c, sha.as_str()),
            None => match self.connect() {
                Ok(connected) => {
                    let (c, sha) = self.connection.insert(connected);
                    (c, sha.as_str())
                }
                Err(e) => return Err((e, batch)),
            },
        };
        let channel = format!("{}:updates", self.prefix);
        // Only the newest record of each entity matters to a key.
        let mut newest: HashMap<&str, u64> = HashMap::new();
        for r in &batch {
            let v = newest.entry(r.entity_id.as_str()).or_insert(r.version);
            *v = (*v).max(r.version);
        }
        // Every record in one pipeline; a retry after a partial failure is harmless because the
        // guard rejects versions already stored.
        let result = {
            let mut pipe = redis::pipe();
            for record in batch.iter().filter(|r| newest.get(r.entity_id.as_str()) == Some(&r.version)) {
                pipe.cmd("EVALSHA")
                    .arg(sha)
                    .arg(2)
                    .arg(format!("{}:{}", self.prefix, record.entity_id))
                    .arg(&channel)
                    .arg(record.version)
                    .arg(&record.json)
                    .arg(&record.entity_id);
            }
            pipe.query::<Vec<i64>>(connection).map(|_| ())
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                self.connection = None;
                Err((e, batch))
            }
        }
    }
}

impl RedisWriter {
    /// A writer to the Redis at `url` under `prefix`; it connects on its first write.
    pub fn open(url: &str, prefix: String) -> Result<Self, redis::RedisError> {
        Ok(RedisWriter { client: redis::Client::open(url)?, connection: None, prefix })
    }
}
