//! [`DriftUdaf`]: a drift test as a DataFusion aggregate, the one type
//! every drift function is an instance of.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

use super::samples::{Evaluate, SampleAccumulator, is_numeric, state_fields};

/// The fields of [`check_function`]'s result.
pub fn check_result_type() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("test", DataType::Utf8, false),
        Field::new("statistic", DataType::Float64, true),
        Field::new("p_value", DataType::Float64, true),
        Field::new("reference_values", DataType::UInt64, false),
        Field::new("current_values", DataType::UInt64, false),
        Field::new("reference_nulls", DataType::UInt64, false),
        Field::new("current_nulls", DataType::UInt64, false),
    ]))
}

/// What a drift function accepts as its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Accepts {
    /// Numbers only.
    Numeric,
    /// Any type; numbers are tested numerically, others as categories.
    Any,
    /// Any type, always tested as categories.
    Categories,
}

/// What a drift function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Returns {
    /// The statistic.
    Statistic,
    /// `struct{statistic, p_value}`.
    StatisticAndPValue,
    /// [`check_result_type`].
    Check,
}

/// A drift test as a DataFusion aggregate.
pub(super) struct DriftUdaf {
    name: &'static str,
    accepts: Accepts,
    returns: Returns,
    /// Whether an optional third argument (a bin count) is accepted.
    takes_bins: bool,
    /// Whether the test wants sorted numeric samples (partial states are
    /// then sorted by each partition).
    sorted: bool,
    evaluate: Evaluate,
    signature: Signature,
}

impl fmt::Debug for DriftUdaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriftUdaf")
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for DriftUdaf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for DriftUdaf {}

impl std::hash::Hash for DriftUdaf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl DriftUdaf {
    /// The aggregate function for a drift test.
    pub(super) fn function(
        name: &'static str,
        accepts: Accepts,
        returns: Returns,
        takes_bins: bool,
        sorted: bool,
        evaluate: Evaluate,
    ) -> AggregateUDF {
        AggregateUDF::new_from_impl(Self {
            name,
            accepts,
            returns,
            takes_bins,
            sorted,
            evaluate,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }

    fn numeric(&self, value_type: &DataType) -> bool {
        self.accepts != Accepts::Categories && is_numeric(value_type)
    }

    fn usage(&self) -> String {
        if self.takes_bins {
            format!("{}(value, is_current [, bins])", self.name)
        } else {
            format!("{}(value, is_current)", self.name)
        }
    }
}

/// `struct{statistic, p_value}`.
fn statistic_and_p_value() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("statistic", DataType::Float64, true),
        Field::new("p_value", DataType::Float64, true),
    ]))
}

/// Builds a `struct{statistic, p_value}` value.
pub(super) fn statistic_and_p_value_scalar(statistic: f64, p_value: f64) -> Result<ScalarValue> {
    let fields = match statistic_and_p_value() {
        DataType::Struct(f) => f,
        _ => unreachable!("statistic_and_p_value is a struct"),
    };
    Ok(ScalarValue::Struct(Arc::new(
        arrow::array::StructArray::try_new(
            fields,
            vec![
                Arc::new(arrow::array::Float64Array::from(vec![statistic])),
                Arc::new(arrow::array::Float64Array::from(vec![p_value])),
            ],
            None,
        )?,
    )))
}

impl AggregateUDFImpl for DriftUdaf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let max = if self.takes_bins { 3 } else { 2 };
        if arg_types.len() < 2 || arg_types.len() > max {
            return plan_err!(
                "{} takes {} arguments, got {}: {}",
                self.name,
                if self.takes_bins { "2 or 3" } else { "2" },
                arg_types.len(),
                self.usage()
            );
        }
        let value = &arg_types[0];
        if self.accepts == Accepts::Numeric && !is_numeric(value) && !value.is_null() {
            return plan_err!(
                "{} needs a numeric value, got {value}: {}",
                self.name,
                self.usage()
            );
        }
        if !matches!(arg_types[1], DataType::Boolean | DataType::Null) {
            return plan_err!(
                "the second argument of {} marks the current rows and must be BOOLEAN, got {}",
                self.name,
                arg_types[1]
            );
        }
        let mut types = vec![value.clone(), DataType::Boolean];
        if let Some(bins) = arg_types.get(2) {
            if !bins.is_integer() {
                return plan_err!(
                    "the bins argument of {} must be an integer, got {bins}",
                    self.name
                );
            }
            types.push(DataType::Int64);
        }
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.returns {
            Returns::Statistic => DataType::Float64,
            Returns::StatisticAndPValue => statistic_and_p_value(),
            Returns::Check => check_result_type(),
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let value_type = args.expr_fields[0].data_type();
        let bins = match args.exprs.get(2) {
            None => None,
            Some(expr) => match expr.downcast_ref::<Literal>().map(Literal::value) {
                Some(ScalarValue::Int64(Some(n))) if *n > 0 => Some(*n as usize),
                _ => {
                    return plan_err!(
                        "the bins argument of {} must be a positive integer constant",
                        self.name
                    );
                }
            },
        };
        Ok(Box::new(SampleAccumulator::new(
            self.numeric(value_type),
            bins,
            self.evaluate,
            self.sorted,
        )))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(
            args.name,
            self.numeric(args.input_fields[0].data_type()),
        ))
    }
}
