import Formats
import Kernels

// `Tensor` views of safetensors entries, for fixtures: Formats itself knows no `Tensor`.

extension SafeTensorsFile {
    /// `name` as a new `Tensor` of its shape, converted to Float32.
    public func tensor(_ name: String) throws -> Tensor {
        let shape = try info(name).shape
        let tensor = Tensor(shape: shape)
        try read(name, into: tensor.data, count: tensor.count)
        return tensor
    }
}

extension SafeTensorsWriter {
    /// Adds a tensor's current values (copied now) as F32.
    public mutating func add(_ name: String, tensor: Tensor) {
        add(name, shape: tensor.shape, floats: tensor.array)
    }
}
