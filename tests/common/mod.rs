//! Real services for integration tests: a tansu Kafka-protocol broker and a Debian
//! redis-server on free loopback ports, the worker binary, and traffic in and out.
//! A missing service binary fails the test; nothing is skipped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// A loopback port nothing listens on, and one this test process has not handed out before:
/// the tests of a file run in parallel, and two of them given the same port would start
/// their servers on it (the second one failing while the first one's answers hide it).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if given.insert(port) {
            return port;
        }
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A binary from PATH or cargo's bin directory.
fn binary(name: &str) -> PathBuf {
    if let Ok(paths) = std::env::var("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let home = std::env::var("CARGO_HOME").map_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"), PathBuf::from);
    let candidate = home.join("bin").join(name);
    assert!(candidate.is_file(), "{name} is not installed: run scripts/test.sh, which installs it");
    candidate
}

/// A tansu broker, with in-memory storage or (durable) in an SQLite file.
pub struct Broker {
    child: Child,
    pub port: u16,
    storage: String,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_on(free_port(), "memory://tansu/".to_owned())
    }

    /// A broker keeping its data in the SQLite file `path`, so it survives [`Broker::restart`].
    pub fn start_durable(path: &Path) -> Broker {
        // tansu 0.6 reads the path of `sqlite://PATH` relative to its working directory.
        let (dir, file) = (path.parent().unwrap_or(Path::new(".")), path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
        Broker::start_on(free_port(), format!("sqlite://{file}@{}", dir.display()))
    }

    fn start_on(port: u16, storage: String) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        // `sqlite://FILE@DIR`: our own notation for where tansu runs.
        let (engine, dir) = match storage.split_once('@') {
            Some((engine, dir)) => (engine.to_owned(), Some(PathBuf::from(dir))),
            None => (storage.clone(), None),
        };
        let mut command = Command::new(binary("tansu"));
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let child = command
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", &engine])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        wait_for_port(port, "tansu");
        Broker { child, port, storage }
    }

    /// Stops the broker (its clients see it go away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        let started = Broker::start_on(self.port, self.storage.clone());
        let stale = std::mem::replace(self, started);
        std::mem::forget(stale);
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.create_topic_with(name, partitions, &[]);
    }

    /// Creates `name` with topic configuration `configs` (such as `("retention.ms", "20000")`).
    pub fn create_topic_with(&self, name: &str, partitions: u32, configs: &[(&str, &str)]) {
        let mut command = Command::new(binary("tansu"));
        command.args(["topic", "create", "--broker", &format!("tcp://127.0.0.1:{}", self.port), "--partitions", &partitions.to_string(), name]);
        for (key, value) in configs {
            command.args(["--config", &format!("{key}={value}")]);
        }
        let status = command
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "cannot create topic {name}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the end-to-end benchmarks run against: the release binary, a scratch directory,
/// tansu with the input topics (8 partitions each) and the weights topic (4), redis-server.
pub struct Bench {
    pub binary: PathBuf,
    pub dir: tempfile::TempDir,
    pub broker: Broker,
    pub redis: Redis,
}

impl Bench {
    pub fn start() -> Bench {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let binary = std::env::var("BANDITFLOW_BIN").map_or_else(|_| root.join("target/release/banditflow"), PathBuf::from);
        assert!(binary.is_file(), "build the release binary first: {}", binary.display());
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Broker::start();
        for (topic, partitions) in [("assignments", 8), ("outcomes", 8), ("weights", 4)] {
            broker.create_topic(topic, partitions);
        }
        let redis_dir = dir.path().join("redis");
        std::fs::create_dir_all(&redis_dir).expect("dir");
        let redis = Redis::start(&redis_dir);
        Bench { binary, dir, broker, redis }
    }
}

/// A redis-server that keeps its data in an append-only file, so it survives a restart.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    pub fn start(dir: &Path) -> Redis {
        let mut redis = Redis { child: None, port: free_port(), dir: dir.to_path_buf() };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server (again) on the same port and directory.
    pub fn resume(&mut self) {
        let child = Command::new(binary("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url()).expect("client").get_connection().expect("connect to redis")
    }

    /// Every key under `prefix:` with its value parsed as JSON.
    pub fn records(&self, prefix: &str) -> BTreeMap<String, Value> {
        let mut connection = self.connection();
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut connection).expect("KEYS");
        let mut out = BTreeMap::new();
        for key in keys {
            let value: Option<String> = redis::cmd("GET").arg(&key).query(&mut connection).expect("GET");
            if let Some(v) = value {
                out.insert(key, serde_json::from_str(&v).unwrap_or(Value::String(v)));
            }
        }
        out
    }

    /// Every key in the database.
    pub fn keys(&self) -> Vec<String> {
        let mut connection = self.connection();
        redis::cmd("KEYS").arg("*").query(&mut connection).expect("KEYS")
    }
}

/// A redis-server that speaks only TLS (a self-signed certificate made here with `openssl`)
/// and wants a password.
pub struct TlsRedis {
    child: Child,
    pub port: u16,
    /// The certificate, which is its own authority: point `SSL_CERT_FILE` at it to trust it.
    pub cert: PathBuf,
    pub password: String,
}

impl TlsRedis {
    pub fn start(dir: &Path, password: &str) -> TlsRedis {
        let (cert, key) = (dir.join("redis-cert.pem"), dir.join("redis-key.pem"));
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
        let port = free_port();
        let child = Command::new(binary("redis-server"))
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--tls-auth-clients", "no", "--requirepass", password])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&cert)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server with TLS");
        wait_for_port(port, "redis-server (TLS)");
        TlsRedis { child, port, cert, password: password.to_owned() }
    }

    /// The URL a client uses, password included.
    pub fn url(&self) -> String {
        format!("rediss://:{}@127.0.0.1:{}/0", self.password, self.port)
    }

    /// The value of `key`, read with `redis-cli` over TLS.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = Command::new(binary("redis-cli"))
            .args(["--tls", "--no-auth-warning", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-a", &self.password, "--raw", "--cacert"])
            .arg(&self.cert)
            // Options before the command: what follows it are the command's arguments.
            .args(["GET", key])
            .output()
            .expect("redis-cli");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Produces JSON lines to `topic`, keyed by `key_field`, each with its `ts` as the message
/// timestamp.
pub fn produce(brokers: &str, topic: &str, lines: &[String], key_field: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .expect("producer");
    for line in lines {
        let value: Value = serde_json::from_str(line).expect("json line");
        let key = value[key_field].as_str().unwrap_or("").to_owned();
        let ts = value["ts"].as_i64().unwrap_or(0);
        send(&producer, topic, &key, line.as_bytes(), Some(ts));
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// Sends one message (with `ts` as its timestamp, if given), waiting while the producer's
/// queue is full.
fn send(producer: &BaseProducer, topic: &str, key: &str, payload: &[u8], ts: Option<i64>) {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    if let Some(ts) = ts {
        record = record.timestamp(ts);
    }
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("produce: {e}"),
        }
    }
    producer.poll(Duration::ZERO);
}

/// Produces `(topic, line)`s in real time on a thread of its own: each as soon as the wall
/// clock reaches its `ts` (the lines sorted by `ts`), so the topics look like live traffic.
/// Returns the thread; it ends once every line is out.
pub fn stream(brokers: &str, mut lines: Vec<(&'static str, String)>) -> std::thread::JoinHandle<()> {
    let brokers = brokers.to_owned();
    std::thread::spawn(move || {
        let ts = |l: &String| serde_json::from_str::<Value>(l).ok().and_then(|v| v["ts"].as_i64()).unwrap_or(0);
        lines.sort_by_key(|(_, l)| ts(l));
        let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).set("linger.ms", "5").create().expect("producer");
        for (topic, line) in &lines {
            let due = ts(line);
            while now_ms() < due {
                producer.poll(Duration::from_millis(5));
            }
            let key = serde_json::from_str::<Value>(line).ok().and_then(|v| v["assignment_id"].as_str().map(str::to_owned)).unwrap_or_default();
            send(&producer, topic, &key, line.as_bytes(), Some(due));
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
    })
}

/// A record read back from the weights topic.
#[derive(Clone, Debug)]
pub struct Published {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub version_header: Option<u64>,
    pub record: Value,
}

/// A consumer (no commits, short fetch waits, `settings` besides) assigned every partition of
/// `topic` from its beginning, and those partitions.
fn from_the_beginning(brokers: &str, topic: &str, settings: &[(&str, &str)]) -> (BaseConsumer, Vec<i32>) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("enable.auto.commit", "false").set("fetch.wait.max.ms", "10");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    drop(metadata);
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    // No partition list may outlive this: a live one makes the client's drop hang.
    drop(tpl);
    (consumer, partitions)
}

/// Every message of `topic`, per partition in offset order, partitions in order.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Published> {
    let (consumer, partitions) = from_the_beginning(brokers, topic, &[("group.id", "banditflow-tests"), ("enable.partition.eof", "true")]);
    let mut by_partition: BTreeMap<i32, Vec<Published>> = BTreeMap::new();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // tansu reports end-of-partition early (inside the last batch): trust it only once
    // nothing has come for a moment.
    let mut last_message = Instant::now();
    while (at_end.len() < partitions.len() || last_message.elapsed() < Duration::from_millis(300)) && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                last_message = Instant::now();
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                let version_header = m.headers().and_then(|h| h.iter().find(|h| h.key == "version").and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()));
                let record = m.payload().and_then(|p| serde_json::from_slice(p).ok()).unwrap_or(Value::Null);
                by_partition.entry(m.partition()).or_default().push(Published { partition: m.partition(), offset: m.offset(), key, version_header, record });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    assert!(at_end.len() == partitions.len(), "could not read {topic} to its end");
    by_partition.into_values().flatten().collect()
}

/// Sends `(key, value)` pairs to `topic` as they are, bytes unchanged (for records that are
/// not JSON).
pub fn produce_raw(brokers: &str, topic: &str, messages: &[(String, Vec<u8>)]) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "5").set("message.max.bytes", "20000000").create().expect("producer");
    for (key, value) in messages {
        send(&producer, topic, key, value, None);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// A message as it is on a topic: key, value and headers, bytes unchanged.
#[derive(Clone, Debug)]
pub struct RawMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    /// The message timestamp, ms since the epoch, if it has one.
    pub timestamp: Option<i64>,
}

/// Every message of `topic` as it is, per partition in offset order (waits up to `timeout`
/// for at least `at_least` of them).
pub fn read_raw(brokers: &str, topic: &str, at_least: usize, timeout: Duration) -> Vec<RawMessage> {
    let (consumer, _) = from_the_beginning(brokers, topic, &[("group.id", "banditflow-tests-raw"), ("fetch.message.max.bytes", "20000000")]);
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut last_message = Instant::now();
    // No end-of-partition to trust (tansu says it early): read until enough came and then
    // nothing more for a moment.
    while (out.len() < at_least || last_message.elapsed() < Duration::from_millis(500)) && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last_message = Instant::now();
            let headers = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())).collect())
                .unwrap_or_default();
            let timestamp = m.timestamp().to_millis();
            out.push(RawMessage { partition: m.partition(), offset: m.offset(), key: m.key().map(<[u8]>::to_vec), payload: m.payload().unwrap_or_default().to_vec(), headers, timestamp });
        }
    }
    out.sort_by_key(|m| (m.partition, m.offset));
    out
}

/// The next offset of each partition of `topic` (what a consumer group that has processed
/// everything commits).
pub fn end_offsets(brokers: &str, topic: &str) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for p in read_topic(brokers, topic) {
        let end = ends.entry(p.partition).or_insert(0);
        *end = (*end).max(p.offset + 1);
    }
    ends
}

/// The offsets `group` has committed for `topic`'s partitions `0..partitions` (-1: none).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().expect("consumer");
    let mut query = TopicPartitionList::new();
    for p in 0..partitions {
        query.add_partition(topic, p);
    }
    let found = consumer.committed_offsets(query, Duration::from_secs(10)).expect("committed offsets");
    let out = found
        .elements()
        .iter()
        .map(|e| (e.partition(), match e.offset() { Offset::Offset(o) => o, _ => -1 }))
        .collect();
    drop(found);
    out
}

/// Collects what is published on a Redis channel, from a background thread.
pub struct Subscription {
    pub messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscription {
    pub fn start(redis: &Redis, channel: &str) -> Subscription {
        let mut connection = redis.connection();
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (m, st, channel) = (messages.clone(), stop.clone(), channel.to_owned());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut pubsub = connection.as_pubsub();
            pubsub.subscribe(&channel).expect("subscribe");
            pubsub.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
            let _ = ready_tx.send(());
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(message) = pubsub.get_message() {
                    if let Ok(payload) = message.get_payload::<String>() {
                        m.lock().expect("lock").push(payload);
                    }
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("subscribed");
        Subscription { messages, stop, thread: Some(thread) }
    }

    pub fn received(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A record without its wall-clock field.
pub fn deterministic(record: &Value) -> Value {
    let mut record = record.clone();
    if let Some(map) = record.as_object_mut() {
        map.remove("computed_at");
    }
    record
}

/// Records grouped by entity, each entity's in order, without `computed_at`.
pub fn by_entity<'a>(records: impl IntoIterator<Item = &'a Value>) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in records {
        let entity = r["entity_id"].as_str().unwrap_or_default().to_owned();
        out.entry(entity).or_default().push(deterministic(r));
    }
    out
}

/// The worker binary, running with a job file.
pub struct Worker {
    pub child: Child,
    pub log: PathBuf,
    /// Where its metrics endpoint listens.
    pub metrics_port: u16,
}

/// GET `path` from 127.0.0.1:`port`: the status code and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// The value of the series `name{labels}` (labels as written, e.g. `topic="outcomes"`) in a
/// Prometheus text page.
pub fn metric(page: &str, name: &str, labels: &str) -> Option<f64> {
    let series = if labels.is_empty() { name.to_owned() } else { format!("{name}{{{labels}}}") };
    page.lines().find_map(|l| l.strip_prefix(&series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

impl Worker {
    pub fn start(job: &Path, extra: &[&str], log: &Path) -> Worker {
        Worker::start_with(Path::new(env!("CARGO_BIN_EXE_banditflow")), job, extra, &[], log)
    }

    /// Starts `binary run --dataflow job extra…` with `env` set.
    pub fn start_with(binary: &Path, job: &Path, extra: &[&str], env: &[(&str, String)], log: &Path) -> Worker {
        let file = std::fs::File::create(log).expect("log file");
        let metrics_port = free_port();
        let child = Command::new(binary)
            .env("BANDITFLOW_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("run")
            .arg("--dataflow")
            .arg(job)
            .args(extra)
            .env("RUST_LOG", std::env::var("WORKER_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start worker");
        Worker { child, log: log.to_path_buf(), metrics_port }
    }

    /// Sends SIGTERM and waits; returns the exit status and how long it took.
    pub fn terminate(self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.signal();
        self.wait(started)
    }

    /// SIGKILL: no chance to flush, commit or checkpoint; waits for the process to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn signal(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }

    /// Waits for the exit; returns its status and the time since `since`.
    pub fn wait(mut self, since: Instant) -> (ExitStatus, Duration) {
        let deadline = since + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, since.elapsed());
            }
            assert!(Instant::now() < deadline, "worker did not exit: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the log) if the worker has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            panic!("worker exited with {status}: {}", self.log_text());
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 200 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lines of a JSON-lines file.
pub fn lines(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).expect("open");
    std::io::BufReader::new(file).lines().map(|l| l.expect("line")).filter(|l| !l.trim().is_empty()).collect()
}

/// Writes lines to a file.
pub fn write_lines(path: &Path, lines: &[String]) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for line in lines {
        writeln!(file, "{line}").expect("write");
    }
}

/// A Prometheus server (Debian's) scraping `targets` every second, as job "banditflow".
pub struct Prometheus {
    child: Child,
    pub port: u16,
}

impl Prometheus {
    pub fn start(dir: &Path, targets: &[String]) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        std::fs::write(&config, format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: banditflow\n    static_configs:\n      - targets: [{list}]\n")).expect("config");
        let child = Command::new(binary("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        wait_for_port(port, "prometheus");
        Prometheus { child, port }
    }

    /// The value of an instant query that returns one series, if it does.
    pub fn query(&self, query: &str) -> Option<f64> {
        let encoded: String = query.bytes().map(|b| if b.is_ascii_alphanumeric() || b"_-.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
        let (status, body) = http_get(self.port, &format!("/api/v1/query?query={encoded}"))?;
        if status != 200 {
            return None;
        }
        let json: Value = serde_json::from_str(&body).ok()?;
        let result = json["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
