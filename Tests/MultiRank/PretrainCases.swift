import DataParallel
import Datasets
import Distributed
import Kernels
import Model
import Retrieval
import Training

/// Retriever pretraining across real ranks: the data-parallel InfoNCE step (embeddings
/// all-gathered, complete gradient of the local rows, one allreduce) gives every rank the
/// gradient and loss a single process computes over the whole global batch.
func pretrainCases(_ suite: Suite) throws {
    let comm = suite.comm
    for n in [7, 1] {
        try suite.test("retriever InfoNCE step: reduced gradient equals the single-process gradient, global batch \(n)") { problems in
            let config = try RetrieverPresets.config("tiny")
            let imageSize = 3 * config.vision.imageSize * config.vision.imageSize, L = config.text.contextLength
            let eot = config.text.endOfTextId
            // The same global batch on every rank.
            var g = RandomGenerator(seed: 17)
            let images = (0..<(n * imageSize)).map { _ in 2 * g.nextFloat() - 1 }
            var tokens: [Int32] = []
            for _ in 0..<n {
                let length = 2 + g.nextInt(upperBound: L - 3)
                for t in 0..<L { tokens.append(t < length ? Int32(1 + g.nextInt(upperBound: Int(eot) - 1)) : (t == length ? eot : 0)) }
            }

            // Data-parallel: this rank's even slice (possibly empty).
            let distributed = try RetrieverModel(config, seed: 3)
            distributed.isTraining = false
            let mine = evenSlice(count: n, rank: comm.rank, size: comm.size)
            distributed.store.zeroGradients()
            let localImages = Array(images[mine.lowerBound * imageSize ..< mine.upperBound * imageSize])
            let localTokens = Array(tokens[mine.lowerBound * L ..< mine.upperBound * L])
            var loss = try localImages.withUnsafeBufferPointer { i in
                try localTokens.withUnsafeBufferPointer { t in
                    try distributed.forwardBackward(images: i.baseAddress, tokens: t.baseAddress, batch: mine.count, comm: comm)
                }
            }
            try comm.allreduce(distributed.store.gradients.data, count: distributed.store.trainableCount, .sum)
            loss = try comm.allreduce(loss, .sum)

            // Single process over the whole batch.
            let single = try RetrieverModel(config, seed: 3)
            single.isTraining = false
            single.store.zeroGradients()
            let reference = try images.withUnsafeBufferPointer { i in
                try tokens.withUnsafeBufferPointer { t in
                    try single.forwardBackward(images: i.baseAddress, tokens: t.baseAddress, batch: n,
                                               comm: SingleRankCommunicator())
                }
            }
            let a = distributed.store.gradients.array, b = single.store.gradients.array
            let scale = max(b.map(abs).max() ?? 0, 1e-6)
            let error = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
            expect(a.count == b.count && error / scale <= 2e-5,
                   "gradient differs: max |a − b| / max |b| = \(error / scale)", &problems)
            expect(abs(loss - reference) <= 1e-5 * max(1, abs(reference)), "loss \(loss) vs \(reference)", &problems)
            // All ranks hold the same reduced gradient.
            var extremes = [Double(a.reduce(0, +)), -Double(a.reduce(0, +))]
            try comm.allreduce(&extremes, .max)
            expect(extremes[0] == -extremes[1], "ranks hold different reduced gradients", &problems)
        }
    }
}
