import DataParallel
import Datasets
import Distributed
import Kernels
import Model
import Retrieval
import TestSupport
import Training

/// Stage-1 retrieval across real ranks: the distributed blocked top-k equals the
/// single-process search over the gathered data, on every rank.
func retrievalCases(_ suite: Suite) throws {
    try suite.test("distributed retrieval equals whole-split search") { problems in
        let ok = try verifyDistributedRetrieval(comm: suite.comm)
        expect(ok, "distributed top-k differs from the brute-force search", &problems)
    }
}
