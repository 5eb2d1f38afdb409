@testable import DataParallel
import Distributed
import Kernels
import TestSupport
import XCTest

/// `ExactMicroBatchSum`: the same bits whichever ranks hold which micro-batches, within
/// the fixed-point grid's error bound of the exact sum, non-finite values kept visible.
final class ExactMicroBatchSumTests: XCTestCase {
    /// Segments: a 6-value tensor of mixed magnitudes, a 3-value tensor that stays zero,
    /// and one scalar.
    private let segments = [0 ..< 6, 6 ..< 9, 9 ..< 10]
    private let width = 10
    private let microBatches = 7

    /// Micro-batch `k`'s vector: values over six orders of magnitude, both signs.
    private func vector(_ k: Int) -> [Float] {
        var generator = RandomGenerator(seed: UInt64(100 + k))
        var v = [Float](repeating: 0, count: width)
        for i in 0 ..< 6 {
            let magnitude = Float([1e-3, 1e-1, 1, 10, 1e3, 0.37][i])
            v[i] = magnitude * (generator.nextFloat() * 2 - 1)
        }
        v[9] = generator.nextFloat() * 5
        return v
    }

    /// Every rank of a `worldSize` job records its contiguous run of micro-batches and
    /// reduces; returns rank 0's result and every rank's vote.
    private func sum(worldSize: Int, poison: (micro: Int, index: Int, value: Float)? = nil,
                     voteOn: Int? = nil) throws -> (result: [Float], votes: [Float]) {
        let outcomes = try ThreadRankCommunicator.run(size: worldSize) { comm -> ([Float], Float) in
            let mine = ShardedSampler.slice(of: self.microBatches, rank: comm.rank, worldSize: worldSize)
            let exact = ExactMicroBatchSum(width: self.width, capacity: max(mine.count, 1), segments: self.segments)
            exact.begin()
            for k in mine {
                var v = self.vector(k)
                if let poison, poison.micro == k { v[poison.index] = poison.value }
                let slot = exact.nextSlot()
                for i in 0 ..< self.width { slot[i] = v[i] }
                exact.commitSlot()
            }
            let vote = try exact.reduce(over: comm, microBatches: self.microBatches, vote: comm.rank == voteOn ? 1 : 0)
            return (Array(exact.result), vote)
        }
        for outcome in outcomes.dropFirst() {
            XCTAssertEqual(outcome.0.map(\.bitPattern), outcomes[0].0.map(\.bitPattern), "ranks disagree")
        }
        return (outcomes[0].0, outcomes.map(\.1))
    }

    func testTheSumHasTheSameBitsOnAnyRankCountAndIsWithinTheGridBound() throws {
        let reference = try sum(worldSize: 1).result
        for worldSize in [2, 3, 4, 8] {   // 8 ranks: one holds no micro-batch
            XCTAssertEqual(try sum(worldSize: worldSize).result.map(\.bitPattern), reference.map(\.bitPattern),
                           "\(worldSize) ranks")
        }
        // Against the sum in Double: the grid of a segment with largest |x| = M has spacing
        // 2^g, g = e(M) + 1 + ⌈log₂ 7⌉ − 62, so each of the 7 roundings is off by ≤ 2^(g−1);
        // converting the sum to Float adds half an ulp of the result.
        let vectors = (0 ..< microBatches).map(vector)
        for segment in segments {
            let largest = vectors.flatMap { Array($0[segment]) }.map(\.magnitude).max()!
            let grid = largest == 0 ? 0 : Double(sign: .plus, exponent: Int(largest.exponent) + 1 + 3 - 62, significand: 1)
            for i in segment {
                let exact = vectors.reduce(0.0) { $0 + Double($1[i]) }
                let bound = Double(microBatches) * grid / 2 + Double(Float(exact).ulp) / 2
                XCTAssertLessThanOrEqual(abs(Double(reference[i]) - exact), bound, "value \(i)")
            }
        }
        XCTAssertEqual(Array(reference[6 ..< 9]), [0, 0, 0], "an all-zero tensor sums to zero")
    }

    func testANonFiniteValueMakesItsSegmentNaNOnEveryRankAndLeavesTheOthers() throws {
        let clean = try sum(worldSize: 3).result
        for value in [Float.nan, .infinity, -.infinity] {
            let poisoned = try sum(worldSize: 3, poison: (micro: 4, index: 2, value: value)).result
            XCTAssertTrue(poisoned[0 ..< 6].allSatisfy(\.isNaN), "\(value) in the first tensor")
            XCTAssertEqual(Array(poisoned[6...]), Array(clean[6...]), "other segments unchanged")
        }
    }

    func testTheVoteOfAnyRankReachesEveryRank() throws {
        XCTAssertEqual(try sum(worldSize: 3).votes, [0, 0, 0])
        XCTAssertEqual(try sum(worldSize: 3, voteOn: 2).votes, [1, 1, 1])
    }
}
