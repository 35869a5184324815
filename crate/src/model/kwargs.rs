//! Constructor arguments read from JSON, as nnU-Net's `arch_kwargs` and MONAI's `network_def`
//! write them: a 3D size is one number for all axes or one per axis.

use serde_json::Value;

/// A 3D size: `3` or `[1, 3, 3]`; `None` for anything else (a 2D size included).
pub fn size3(v: &Value) -> Option<[usize; 3]> {
    match v {
        Value::Number(n) => Some([n.as_u64()? as usize; 3]),
        Value::Array(a) if a.len() == 3 => {
            let mut out = [0; 3];
            for (o, v) in out.iter_mut().zip(a) {
                *o = v.as_u64()? as usize;
            }
            Some(out)
        }
        _ => None,
    }
}

/// A per-stage list of 3D sizes; one size (not in a list) stands for every one of `stages`.
pub fn stage_sizes(v: Option<&Value>, stages: Option<usize>) -> Option<Vec<[usize; 3]>> {
    match (v?, stages) {
        (Value::Array(a), Some(n)) if a.len() == n => a.iter().map(size3).collect(),
        (Value::Array(a), None) => a.iter().map(size3).collect(),
        (v, Some(n)) => Some(vec![size3(v)?; n]),
        _ => None,
    }
}
