/// A dense, row-major, contiguous Float32 buffer with an explicit shape.
///
/// `Tensor` owns its memory (64-byte aligned, zero-initialised) and never reallocates:
/// layers allocate their activations once per batch shape and reuse them every step.
/// Hot loops work on `data` (an unsafe pointer), never through bounds-checked subscripts.
public final class Tensor {
    /// Extent of each dimension, outermost first.
    public let shape: [Int]
    /// Number of elements (product of `shape`).
    public let count: Int
    /// The elements, row-major. Valid for the lifetime of the tensor.
    public let data: UnsafeMutablePointer<Float>

    /// A zero-filled tensor of the given shape.
    public init(shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: Swift.max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        self.data = raw.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        data.initialize(repeating: 0, count: Swift.max(count, 1))
    }

    /// A tensor holding `values` (row-major); `values.count` must equal the shape's product.
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count,
                     "Tensor: \(values.count) values for shape \(shape) (\(count) elements)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    deinit { UnsafeMutableRawPointer(data).deallocate() }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// The elements as an array (a copy; for tests and I/O, not hot loops).
    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// Element at a flat (row-major) index. Bounds-checked: not for hot loops.
    public subscript(flat index: Int) -> Float {
        get { precondition(index >= 0 && index < count); return data[index] }
        set { precondition(index >= 0 && index < count); data[index] = newValue }
    }

    /// Sets every element to zero.
    public func zero() { data.update(repeating: 0, count: count) }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// Copies the elements of `other`, which must have the same number of elements.
    public func copy(from other: Tensor) {
        precondition(other.count == count, "Tensor.copy: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }
}
