//! Choosing the compute device: `auto` uses the first CUDA GPU when this
//! binary was built with the `cuda` feature and one is visible, else the
//! CPU; `cpu`; `cuda` or `cuda:N`.

use candle_core::Device;

/// A device as a user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A GPU when there is one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA GPU number `n`.
    Cuda(usize),
}

impl DeviceChoice {
    /// Parses `auto`, `cpu`, `cuda` or `cuda:N`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_lowercase();
        match t.as_str() {
            "" | "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| {
                    format!("invalid device '{text}': expected auto, cpu, cuda or cuda:N")
                }),
        }
    }
}

/// The device for a choice; an error for a GPU this build or machine
/// does not have.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, String> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available() {
                Ok(Device::new_cuda(0).unwrap_or(Device::Cpu))
            } else {
                Ok(Device::Cpu)
            }
        }
        DeviceChoice::Cuda(n) => {
            if !candle_core::utils::cuda_is_available() {
                return Err(
                    "this autolake was built without CUDA: rebuild with `--features cuda` \
                     or use device 'cpu'"
                        .to_string(),
                );
            }
            Device::new_cuda(n).map_err(|e| format!("CUDA device {n} is not usable: {e}"))
        }
    }
}

/// A device's name as recorded with a model (`cpu`, `cuda:0`).
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices() {
        assert_eq!(DeviceChoice::parse("AUTO"), Ok(DeviceChoice::Auto));
        assert_eq!(DeviceChoice::parse("cuda:1"), Ok(DeviceChoice::Cuda(1)));
        assert!(
            DeviceChoice::parse("tpu")
                .unwrap_err()
                .contains("expected auto")
        );
        let cpu = resolve_device(DeviceChoice::Cpu).unwrap();
        assert_eq!(device_name(&cpu), "cpu");
        if !candle_core::utils::cuda_is_available() {
            assert!(
                resolve_device(DeviceChoice::Cuda(0))
                    .unwrap_err()
                    .contains("without CUDA")
            );
            assert!(resolve_device(DeviceChoice::Auto).unwrap().is_cpu());
        }
    }
}
