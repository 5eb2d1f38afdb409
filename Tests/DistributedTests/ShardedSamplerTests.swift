@testable import Distributed
import Kernels
import XCTest

final class ShardedSamplerTests: XCTestCase {
    /// The samplers of every rank of a `worldSize`-rank job.
    private func world(_ worldSize: Int, itemCount: Int, batch: Int, seed: UInt64 = 7,
                       shuffle: Bool = true, dropLast: Bool) -> [ShardedSampler] {
        (0 ..< worldSize).map {
            ShardedSampler(itemCount: itemCount, globalBatchSize: batch, rank: $0, worldSize: worldSize,
                           seed: seed, shuffle: shuffle, dropLast: dropLast)
        }
    }

    func testGeneratorMatchesSplitMix64ReferenceSequence() {
        // First outputs of SplitMix64 seeded with 0 (the published reference values): the
        // stream the sampler shuffles with is Kernels.RandomGenerator's.
        var generator = RandomGenerator(seed: 0)
        XCTAssertEqual(generator.nextUInt64(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(generator.nextUInt64(), 0x6E78_9E6A_A1B9_65F4)
        XCTAssertEqual(generator.nextUInt64(), 0x06C4_5D18_8009_454F)
        // mix is the SplitMix64 output function: mix(state + increment) is the first output.
        XCTAssertEqual(ShardedSampler.mix(0 &+ 0x9E37_79B9_7F4A_7C15), 0xE220_A839_7B1D_CDAF)
    }

    func testBoundedDrawsStayInRange() {
        var generator = RandomGenerator(seed: 1)
        var seen = Set<Int>()
        for _ in 0 ..< 1000 {
            let value = generator.nextInt(upperBound: 7)
            XCTAssertTrue((0 ..< 7).contains(value))
            seen.insert(value)
        }
        XCTAssertEqual(seen.count, 7)
    }

    /// Pinned orders: a change here changes which samples every training run visits.
    func testGlobalOrderIsPinned() {
        let sampler = ShardedSampler.training(itemCount: 12, globalBatchSize: 4, rank: 0, worldSize: 1, seed: 42)
        XCTAssertEqual(sampler.globalOrder(epoch: 0), [2, 5, 4, 3, 8, 6, 9, 11, 0, 10, 1, 7])
        XCTAssertEqual(sampler.globalOrder(epoch: 3), [6, 0, 5, 11, 10, 8, 3, 9, 7, 2, 4, 1])
    }

    func testGlobalOrderIsTheDocumentedFisherYates() {
        let sampler = ShardedSampler.training(itemCount: 777, globalBatchSize: 10, rank: 0, worldSize: 1, seed: 99)
        for epoch in [0, 1, 12] {
            var order = Array(0 ..< 777)
            var generator = RandomGenerator(seed: ShardedSampler.mix(99 ^ ShardedSampler.mix(UInt64(epoch))))
            for i in stride(from: 776, through: 1, by: -1) { order.swapAt(i, generator.nextInt(upperBound: i + 1)) }
            XCTAssertEqual(sampler.globalOrder(epoch: epoch), order, "epoch \(epoch)")
        }
    }

    func testEveryItemExactlyOncePerEpochWithoutDropLast() {
        for worldSize in [1, 2, 3, 4, 7] {
            for (itemCount, batch) in [(100, 10), (103, 10), (5, 8), (0, 4), (1, 1), (37, 3)] {
                let samplers = world(worldSize, itemCount: itemCount, batch: batch, dropLast: false)
                for epoch in 0 ..< 3 {
                    let seen = samplers.flatMap { $0.indices(epoch: epoch) }
                    XCTAssertEqual(seen.sorted(), Array(0 ..< itemCount),
                                   "W=\(worldSize) N=\(itemCount) B=\(batch) epoch \(epoch)")
                }
            }
        }
    }

    func testDropLastSeesOnlyFullBatchesAndNoDuplicates() {
        for worldSize in [1, 2, 3, 4] {
            let samplers = world(worldSize, itemCount: 103, batch: 10, dropLast: true)
            XCTAssertEqual(samplers[0].batchesPerEpoch, 10)
            let seen = samplers.flatMap { $0.indices(epoch: 2) }
            XCTAssertEqual(seen.count, 100)
            XCTAssertEqual(Set(seen).count, 100)
            XCTAssertEqual(Set(seen), Set(samplers[0].globalOrder(epoch: 2).prefix(100)))
        }
    }

    func testDeterministicFromSeedAndEpoch() {
        let a = ShardedSampler.training(itemCount: 500, globalBatchSize: 32, rank: 1, worldSize: 3, seed: 42)
        let b = ShardedSampler.training(itemCount: 500, globalBatchSize: 32, rank: 1, worldSize: 3, seed: 42)
        XCTAssertEqual(a.batches(epoch: 5), b.batches(epoch: 5))
        XCTAssertEqual(a.globalOrder(epoch: 0), b.globalOrder(epoch: 0))
        let otherSeed = ShardedSampler.training(itemCount: 500, globalBatchSize: 32, rank: 1, worldSize: 3, seed: 43)
        XCTAssertNotEqual(a.globalOrder(epoch: 0), otherSeed.globalOrder(epoch: 0))
    }

    func testDifferentEpochsDiffer() {
        let sampler = ShardedSampler.training(itemCount: 500, globalBatchSize: 32, rank: 0, worldSize: 1, seed: 42)
        let orders = (0 ..< 5).map { sampler.globalOrder(epoch: $0) }
        XCTAssertEqual(Set(orders).count, 5)
        for order in orders { XCTAssertEqual(order.sorted(), Array(0 ..< 500)) }
        XCTAssertNotEqual(orders[0], Array(0 ..< 500))
    }

    func testGlobalBatchesAreInvariantToRankCount() {
        // Concatenating the ranks' slices of each global batch in rank order gives the
        // same global batch, in the same order, for every rank count.
        let reference = world(1, itemCount: 211, batch: 16, dropLast: false)[0].batches(epoch: 3)
        for worldSize in [2, 3, 4, 5, 16, 20] {
            let perRank = world(worldSize, itemCount: 211, batch: 16, dropLast: false).map { $0.batches(epoch: 3) }
            for batch in reference.indices {
                XCTAssertEqual(perRank.flatMap { $0[batch] }, reference[batch], "W=\(worldSize) batch \(batch)")
            }
        }
    }

    func testSliceSizesDifferByAtMostOneAndMayBeEmpty() {
        let samplers = world(4, itemCount: 18, batch: 7, dropLast: false)
        // Batches of 7, 7 and a last partial batch of 4.
        XCTAssertEqual(samplers[0].batchesPerEpoch, 3)
        XCTAssertEqual(samplers[0].sliceCounts(batch: 0), [2, 2, 2, 1])
        XCTAssertEqual(samplers[0].sliceCounts(batch: 2), [1, 1, 1, 1])
        let small = world(4, itemCount: 9, batch: 8, dropLast: false)
        XCTAssertEqual(small[0].sliceCounts(batch: 1), [1, 0, 0, 0])
        XCTAssertEqual(small.map { $0.batches(epoch: 0).count }, [2, 2, 2, 2])
        XCTAssertEqual(small[3].batches(epoch: 0)[1], [])
    }

    func testEvaluationVisitsItemsInOrder() {
        let samplers = (0 ..< 3).map {
            ShardedSampler.evaluation(itemCount: 10, globalBatchSize: 4, rank: $0, worldSize: 3)
        }
        XCTAssertEqual(samplers[0].batches(epoch: 0), [[0, 1], [4, 5], [8]])
        XCTAssertEqual(samplers[2].batches(epoch: 0), [[3], [7], []])
        XCTAssertEqual(samplers.flatMap { $0.indices(epoch: 9) }.sorted(), Array(0 ..< 10))
    }
    /// Deterministic mode's slices: whole micro-batches per rank, contiguous and in rank
    /// order, covering each global batch once; a micro-batch's rows do not depend on the
    /// rank count.
    func testMicroBatchSlicesAreWholeMicroBatchesInRankOrder() {
        for (batch, micro) in [(10, 3), (8, 2), (5, 8), (7, 1)] {
            let microCount = (batch + micro - 1) / micro
            for worldSize in [1, 2, 3, 4, 6] {
                let samplers = (0 ..< worldSize).map {
                    ShardedSampler.training(itemCount: 40, globalBatchSize: batch, rank: $0, worldSize: worldSize,
                                            seed: 3, microBatchSize: micro)
                }
                XCTAssertEqual(samplers[0].microBatchCount(0), microCount)
                var nextRow = 0, nextMicro = 0
                for sampler in samplers {
                    let rows = sampler.localRows(batch: 0), micros = sampler.localMicroBatches(batch: 0)
                    XCTAssertEqual(rows.lowerBound, nextRow, "batch \(batch)/\(micro) on \(worldSize) ranks")
                    XCTAssertEqual(micros.lowerBound, nextMicro)
                    for m in micros {
                        let r = sampler.microBatchRows(batch: 0, micro: m)
                        XCTAssertEqual(r, m * micro ..< min((m + 1) * micro, batch))
                        XCTAssertEqual(r.lowerBound, nextRow)
                        nextRow = r.upperBound
                    }
                    XCTAssertEqual(rows.upperBound, nextRow)
                    XCTAssertEqual(sampler.sliceCounts(batch: 0)[sampler.rank], rows.count)
                    nextMicro = micros.upperBound
                }
                XCTAssertEqual(nextRow, batch)
                XCTAssertEqual(nextMicro, microCount)
                // Items are the same global order, cut differently.
                XCTAssertEqual(samplers.flatMap { $0.batches(epoch: 1)[2] },
                               ShardedSampler.training(itemCount: 40, globalBatchSize: batch, rank: 0, worldSize: 1,
                                                       seed: 3).batches(epoch: 1)[2])
            }
        }
    }
}
