//! An entity's rows as a Parquet file, through arrow (`docs/semantics.md`, "Offline
//! evaluation: the dataset" lists the column types).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, Int8Builder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::rows::DatasetRow;

/// Rows per record batch (and so per row group at most).
const BATCH_ROWS: usize = 64 * 1024;

/// The dataset's Arrow schema: ids as UTF-8, times as Int64 ms since the epoch, `reward` as
/// Int8, `fallback` and `sticky` as booleans, `context` as JSON text.
pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("assignment_id", DataType::Utf8, false),
        Field::new("entity_id", DataType::Utf8, false),
        Field::new("arm_id", DataType::Utf8, false),
        Field::new("unit_id", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, false),
        Field::new("resolved_at", DataType::Int64, false),
        Field::new("reward", DataType::Int8, false),
        Field::new("weights_version", DataType::UInt64, true),
        Field::new("propensity", DataType::Float64, true),
        Field::new("propensity_source", DataType::Utf8, true),
        Field::new("fallback", DataType::Boolean, true),
        Field::new("sticky", DataType::Boolean, true),
        Field::new("context", DataType::Utf8, false),
    ])
}

fn batch(schema: &Arc<Schema>, rows: &[DatasetRow]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let n = rows.len();
    let mut ids = StringBuilder::with_capacity(n, n * 16);
    let mut entities = StringBuilder::with_capacity(n, n * 8);
    let mut arms = StringBuilder::with_capacity(n, n * 8);
    let mut units = StringBuilder::with_capacity(n, n * 8);
    let (mut ts, mut resolved_at) = (Int64Builder::with_capacity(n), Int64Builder::with_capacity(n));
    let mut reward = Int8Builder::with_capacity(n);
    let mut version = UInt64Builder::with_capacity(n);
    let mut propensity = Float64Builder::with_capacity(n);
    let mut source = StringBuilder::with_capacity(n, n * 8);
    let (mut fallback, mut sticky) = (BooleanBuilder::with_capacity(n), BooleanBuilder::with_capacity(n));
    let mut context = StringBuilder::with_capacity(n, n * 2);
    for row in rows {
        ids.append_value(&row.assignment_id);
        entities.append_value(&row.entity_id);
        arms.append_value(&row.arm_id);
        units.append_option(row.unit_id.as_deref());
        ts.append_value(row.ts);
        resolved_at.append_value(row.resolved_at);
        reward.append_value(row.reward as i8);
        version.append_option(row.weights_version);
        propensity.append_option(row.propensity);
        source.append_option(row.propensity_source.map(|s| s.name()));
        fallback.append_option(row.fallback);
        sticky.append_option(row.sticky);
        context.append_value(serde_json::Value::Object(row.context.clone()).to_string());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(entities.finish()),
        Arc::new(arms.finish()),
        Arc::new(units.finish()),
        Arc::new(ts.finish()),
        Arc::new(resolved_at.finish()),
        Arc::new(reward.finish()),
        Arc::new(version.finish()),
        Arc::new(propensity.finish()),
        Arc::new(source.finish()),
        Arc::new(fallback.finish()),
        Arc::new(sticky.finish()),
        Arc::new(context.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns)
}

/// Writes `rows` to `path` (created or truncated), Snappy-compressed.
pub fn write(path: &Path, rows: &[DatasetRow]) -> Result<(), parquet::errors::ParquetError> {
    let schema = Arc::new(schema());
    let file = File::create(path)?;
    let properties = WriterProperties::builder().set_compression(Compression::SNAPPY).set_created_by(format!("banditflow {}", env!("CARGO_PKG_VERSION"))).build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))?;
    for chunk in rows.chunks(BATCH_ROWS) {
        writer.write(&batch(&schema, chunk)?)?;
    }
    writer.close()?;
    Ok(())
}
