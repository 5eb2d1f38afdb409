import Formats
import Model

// An optimiser's state in a checkpoint: each buffer as `optimizer.<name>` (Float32, flat),
// the step count in the metadata. Training and retriever checkpoints share it.

extension SafeTensorsWriter {
    /// Adds `optimizer`'s buffers as `optimizer.<name>` (written from the buffers, not copied).
    public mutating func addOptimizerState(_ optimizer: any Optimizer) {
        for (name, tensor) in optimizer.stateBuffers {
            add("optimizer." + name, shape: [tensor.count], pointer: UnsafePointer(tensor.data), count: tensor.count)
        }
    }
}

extension SafeTensorsFile {
    /// Reads `optimizer`'s buffers back and sets its step count to `step`; an error names
    /// the file and the missing buffer when the checkpoint was written by another optimiser.
    public func readOptimizerState(into optimizer: any Optimizer, step: Int) throws {
        for (name, tensor) in optimizer.stateBuffers {
            let key = "optimizer." + name
            guard contains(key), try entry(key).count == tensor.count else {
                throw ImportFileError(path: path, reason: "no optimiser buffer '\(key)' of \(tensor.count) values; resume "
                                      + "with the optimiser and configuration the run was started with")
            }
            try read(key, into: tensor.data, count: tensor.count)
        }
        optimizer.stepCount = step
    }
}
