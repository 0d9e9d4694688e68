//! TPC-H for the benchmarks and the tests: the 22 queries, and every
//! table generated in memory by `tpchgen` at a scale factor. Used by the
//! `tpch` benchmark and, through `#[path]`, by the cluster tests, so both
//! load the same data.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The 22 TPC-H queries, `q01` first.
pub(crate) const QUERIES: [&str; 22] = [
    include_str!("../tpch/q01.sql"),
    include_str!("../tpch/q02.sql"),
    include_str!("../tpch/q03.sql"),
    include_str!("../tpch/q04.sql"),
    include_str!("../tpch/q05.sql"),
    include_str!("../tpch/q06.sql"),
    include_str!("../tpch/q07.sql"),
    include_str!("../tpch/q08.sql"),
    include_str!("../tpch/q09.sql"),
    include_str!("../tpch/q10.sql"),
    include_str!("../tpch/q11.sql"),
    include_str!("../tpch/q12.sql"),
    include_str!("../tpch/q13.sql"),
    include_str!("../tpch/q14.sql"),
    include_str!("../tpch/q15.sql"),
    include_str!("../tpch/q16.sql"),
    include_str!("../tpch/q17.sql"),
    include_str!("../tpch/q18.sql"),
    include_str!("../tpch/q19.sql"),
    include_str!("../tpch/q20.sql"),
    include_str!("../tpch/q21.sql"),
    include_str!("../tpch/q22.sql"),
];

/// One generated table.
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
}

impl Table {
    pub(crate) fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Generates every table, with string views cast to plain strings so both
/// writers get identical, Delta-storable batches.
pub(crate) fn generate(scale: f64) -> Result<Vec<Table>, Box<dyn std::error::Error>> {
    use tpchgen::generators::*;
    use tpchgen_arrow::*;
    let batch = 8192;
    let collect = |name: &'static str,
                   it: Box<dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>>|
     -> Result<Table, Box<dyn std::error::Error>> {
        let batches: Vec<RecordBatch> = it
            .map(|b| b.and_then(plain_strings))
            .collect::<Result<_, _>>()?;
        let schema = batches
            .first()
            .map(RecordBatch::schema)
            .ok_or_else(|| format!("{name}: no rows generated"))?;
        Ok(Table {
            name,
            schema,
            batches,
        })
    };
    Ok(vec![
        collect(
            "nation",
            Box::new(NationArrow::new(NationGenerator::new(scale, 1, 1)).with_batch_size(batch)),
        )?,
        collect(
            "region",
            Box::new(RegionArrow::new(RegionGenerator::new(scale, 1, 1)).with_batch_size(batch)),
        )?,
        collect(
            "part",
            Box::new(PartArrow::new(PartGenerator::new(scale, 1, 1)).with_batch_size(batch)),
        )?,
        collect(
            "supplier",
            Box::new(
                SupplierArrow::new(SupplierGenerator::new(scale, 1, 1)).with_batch_size(batch),
            ),
        )?,
        collect(
            "partsupp",
            Box::new(
                PartSuppArrow::new(PartSuppGenerator::new(scale, 1, 1)).with_batch_size(batch),
            ),
        )?,
        collect(
            "customer",
            Box::new(
                CustomerArrow::new(CustomerGenerator::new(scale, 1, 1)).with_batch_size(batch),
            ),
        )?,
        collect(
            "orders",
            Box::new(OrderArrow::new(OrderGenerator::new(scale, 1, 1)).with_batch_size(batch)),
        )?,
        collect(
            "lineitem",
            Box::new(
                LineItemArrow::new(LineItemGenerator::new(scale, 1, 1)).with_batch_size(batch),
            ),
        )?,
    ])
}

fn plain_strings(batch: RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = batch.schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => Field::new(f.name(), DataType::Utf8, f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    let columns = batch
        .columns()
        .iter()
        .zip(&fields)
        .map(|(c, f)| cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
