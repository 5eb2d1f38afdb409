@testable import Distributed
import TestSupport
import XCTest

final class CommunicatorTests: XCTestCase {
    func testSingleRankCollectivesAreIdentityOrCopy() throws {
        let comm = SingleRankCommunicator()
        XCTAssertEqual(comm.rank, 0)
        XCTAssertEqual(comm.size, 1)
        XCTAssertEqual(comm.backendName, "single")
        try comm.barrier()

        var values: [Float] = [1, -2, 3.5]
        for op in ReductionOp.allCases {
            try comm.allreduce(&values, op)
            XCTAssertEqual(values, [1, -2, 3.5], "\(op)")
        }
        XCTAssertEqual(try comm.allreduce(Int.max, .sum), Int.max)
        XCTAssertEqual(try comm.allreduce(2.5, .max), 2.5)

        XCTAssertEqual(try comm.broadcastArray([1.0, 2.0], root: 0), [1.0, 2.0])
        XCTAssertEqual(try comm.broadcast(string: "héllo", root: 0), "héllo")
        XCTAssertEqual(try comm.allgather([7, 8, 9]), [7, 8, 9])
        let (gathered, counts) = try comm.allgatherv([UInt8]())
        XCTAssertEqual(gathered, [])
        XCTAssertEqual(counts, [0])
        XCTAssertEqual(try comm.gather([1, 2], root: 0), [1, 2])
        XCTAssertEqual(try comm.gatherv([3, 4, 5], root: 0)?.values, [3, 4, 5])
        XCTAssertEqual(try comm.allgather(string: comm.hostName), [comm.hostName])
    }

    func testPointerOverloadReducesFlatBuffer() throws {
        let comm: any Communicator = SingleRankCommunicator()
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 5)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 0.25, count: 5)
        try comm.allreduce(buffer, count: 5, .sum)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: buffer, count: 5)), Array(repeating: 0.25, count: 5))
    }

    func testTheLauncherRankCountComesFromTheLaunchersEnvironment() {
        XCTAssertNil(Communicators.launcherRankCount(environment: [:]))
        XCTAssertEqual(Communicators.launcherRankCount(environment: ["OMPI_COMM_WORLD_SIZE": "4"]), 4)
        XCTAssertEqual(Communicators.launcherRankCount(environment: ["PMI_SIZE": "2"]), 2)
        XCTAssertEqual(Communicators.launcherRankCount(environment: ["SLURM_NTASKS": "8", "SLURM_PROCID": "3"]), 8)
    }

    func testRunOrAbortReturnsTheResult() {
        let comm = SingleRankCommunicator()
        XCTAssertEqual(comm.runOrAbort { 42 }, 42)
    }

    func testMPIErrorDescriptionNamesTheCall() {
        let error = MPIError(code: 13, call: "MPI_Allreduce", reason: "MPI_ERR_COUNT: invalid count argument")
        XCTAssertTrue(error.description.contains("MPI_Allreduce failed with MPI error 13"))
        XCTAssertTrue(error.description.contains("invalid count"))
    }

    func testChunkRangesCoverEveryElementOnceWithinTheLimit() {
        XCTAssertEqual(chunkRanges(count: 0, limit: 4), [])
        XCTAssertEqual(chunkRanges(count: 3, limit: 4), [0 ..< 3])
        XCTAssertEqual(chunkRanges(count: 8, limit: 4), [0 ..< 4, 4 ..< 8])
        XCTAssertEqual(chunkRanges(count: 10, limit: 4), [0 ..< 4, 4 ..< 8, 8 ..< 10])
        let big = Int(Int32.max) * 2 + 5
        let ranges = chunkRanges(count: big, limit: Int(Int32.max))
        XCTAssertEqual(ranges.count, 3)
        XCTAssertEqual(ranges.last, Int(Int32.max) * 2 ..< big)
        XCTAssertEqual(displacements([3, 0, 2, 5]), [0, 3, 3, 5])
    }

    func testAutoModeFollowsLauncherVariables() {
        func resolve(_ environment: [String: String], _ mode: CommunicatorMode = .auto) -> CommunicatorMode {
            Communicators.resolve(mode, environment: environment)
        }
        XCTAssertEqual(resolve([:]), .single)
        XCTAssertEqual(resolve(["OMPI_COMM_WORLD_SIZE": "4"]), .mpi)
        XCTAssertEqual(resolve(["PMIX_RANK": "0"]), .mpi)
        XCTAssertEqual(resolve(["PMI_SIZE": "2"]), .mpi)
        XCTAssertEqual(resolve(["SLURM_NTASKS": "8"]), .single)
        XCTAssertEqual(resolve(["SLURM_NTASKS": "8", "SLURM_PROCID": "3"]), .mpi)
        XCTAssertEqual(resolve(["OMPI_COMM_WORLD_SIZE": "4", "CLIPIT_COMM": "single"]), .single)
        XCTAssertEqual(resolve(["CLIPIT_COMM": "mpi"]), .mpi)
        XCTAssertEqual(resolve(["OMPI_COMM_WORLD_SIZE": "4"], .single), .single)
        XCTAssertEqual(resolve([:], .mpi), .mpi)
    }

    func testMakeWithoutLauncherGivesSingleRank() throws {
        let comm = try Communicators.make(.single)
        XCTAssertTrue(comm is SingleRankCommunicator)
    }
}

/// The watchdog wrapper passes every collective through unchanged (its timeout path ends the
/// process, so Tests/Integration/train_ranks.sh checks it under mpirun with a stopped rank).
final class WatchedCommunicatorTests: XCTestCase {
    func testCollectivesPassThroughTheWatchdog() throws {
        let results = try ThreadRankCommunicator.run(size: 3) { base -> ([Float], [Int], String) in
            let comm = WatchedCommunicator(base, timeout: 30)
            defer { comm.shutdown() }
            comm.phase = "step 7"
            var values: [Float] = [Float(comm.rank), 1]
            try comm.allreduce(&values, .sum)
            let gathered = try comm.allgather([comm.rank * 10])
            try comm.barrier()
            return (values, gathered, comm.phase)
        }
        for (values, gathered, phase) in results {
            XCTAssertEqual(values, [3, 3])
            XCTAssertEqual(gathered, [0, 10, 20])
            XCTAssertEqual(phase, "step 7")
        }
    }
}
