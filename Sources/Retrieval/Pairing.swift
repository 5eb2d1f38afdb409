import Datasets
import Distributed
import Kernels

/// How Stage 1 chooses the report paired with each image (the pairing ablations).
///
/// Every strategy is a pure function of (embeddings, labels, seed, global image
/// index): the choice for image i does not depend on the number of ranks or on how
/// the images are split over them.
///
/// Text form (configuration files, command line, the pairs file header):
/// `top1`, `sample-top-k:K`, `random`, `least-similar`, `oracle`.
public enum PairingStrategy: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The most similar report, j*(i) = argmax_j v_i · t_j (the method's default).
    case top1
    /// A report drawn uniformly among the K most similar ones.
    case sampleTopK(Int)
    /// A report drawn uniformly among all reports (similarity ignored).
    case random
    /// The least similar report, argmin_j v_i · t_j.
    case leastSimilar
    /// Class-matched oracle: the most similar report among those whose label equals
    /// the image's label. Needs image and report labels (e.g. synthetic data).
    case oracle

    /// Parses the text form; throws with the accepted forms otherwise.
    public init(parsing text: String) throws {
        switch text {
        case "top1": self = .top1
        case "random": self = .random
        case "least-similar": self = .leastSimilar
        case "oracle": self = .oracle
        default:
            let prefix = "sample-top-k:"
            if text.hasPrefix(prefix), let k = Int(text.dropFirst(prefix.count)), k >= 1 {
                self = .sampleTopK(k)
            } else {
                throw RetrievalError("unknown pairing strategy '\(text)' (expected top1, sample-top-k:K with K ≥ 1, "
                                         + "random, least-similar or oracle)")
            }
        }
    }

    public var description: String {
        switch self {
        case .top1: return "top1"
        case .sampleTopK(let k): return "sample-top-k:\(k)"
        case .random: return "random"
        case .leastSimilar: return "least-similar"
        case .oracle: return "oracle"
        }
    }

    public init(from decoder: Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Parameters of `pairImages`.
public struct PairingOptions: Equatable, Sendable {
    public var strategy: PairingStrategy
    /// Seed of the random strategies (`sampleTopK`, `random`).
    public var seed: UInt64
    /// How many most-similar reports (indices and scores) to record per image, for
    /// analysis; capped at the number of reports.
    public var recordedK: Int
    public var blocks: RetrievalBlocks

    public init(strategy: PairingStrategy = .top1, seed: UInt64 = 0, recordedK: Int = 5,
                blocks: RetrievalBlocks = RetrievalBlocks()) {
        precondition(recordedK >= 1, "PairingOptions: recordedK must be at least 1, got \(recordedK)")
        self.strategy = strategy
        self.seed = seed
        self.recordedK = recordedK
        self.blocks = blocks
    }
}

/// The generator of the random choice for global image `imageIndex`:
/// `RandomGenerator(seed: derivedSeed(seed, imageIndex))`, the project's per-item seed
/// rule. One independent stream per image, so the draw depends on (seed, image) only,
/// never on the rank that holds the image.
public func pairingGenerator(seed: UInt64, imageIndex: Int) -> RandomGenerator {
    RandomGenerator(seed: derivedSeed(seed, imageIndex))
}

/// Stage 1: pairs every image of a split with one report.
///
/// Each rank passes its disjoint, contiguous slice of the image embeddings (ranks in
/// global image order) and its slice of the report embeddings (ranks in global report
/// order), both (rows, `dimension`), not necessarily normalised; labels, when given,
/// are the labels of those same rows (a negative label means unknown). Reports are
/// shared with one `allgatherv`, each rank searches for its own images, and the
/// records are gathered with `allgatherv`: every rank returns the same `PairsFile`,
/// covering all images in global order (rank 0 writes it). Every rank must call it.
///
/// Chosen report per strategy (i = global image index, M = number of reports):
/// - `top1`: the first of the top-k list (ties: lower report index).
/// - `sampleTopK(K)`: entry `pairingGenerator(seed, i).nextInt(upperBound: K)` of the
///   top-K list; requires K ≤ M.
/// - `random`: report `pairingGenerator(seed, i).nextInt(upperBound: M)`; its score is
///   the cosine of that pair.
/// - `leastSimilar`: the bottom-1 report (ties: lower report index).
/// - `oracle`: the most similar report with the image's label; throws if an image has
///   no label or no report carries its label.
///
/// Throws (on every rank alike) when there are no reports, an embedding is not
/// finite, the ranks disagree on the dimension, or the strategy's requirements fail.
public func pairImages(comm: any Communicator, split: String,
                       localImageEmbeddings: [Float], localReportEmbeddings: [Float], dimension: Int,
                       localImageLabels: [Int]? = nil, localReportLabels: [Int]? = nil,
                       options: PairingOptions = PairingOptions()) throws -> PairsFile {
    precondition(dimension >= 1 && localImageEmbeddings.count % dimension == 0
                     && localReportEmbeddings.count % dimension == 0,
                 "pairImages: embedding buffers must hold whole rows of dimension \(dimension)")
    let localImageCount = localImageEmbeddings.count / dimension
    precondition(localImageLabels.map { $0.count == localImageCount } ?? true,
                 "pairImages: \(localImageLabels?.count ?? 0) image labels for \(localImageCount) images")
    precondition(localReportLabels.map { $0.count * dimension == localReportEmbeddings.count } ?? true,
                 "pairImages: report labels and report embeddings disagree in count")

    // Agree on the inputs before anything that could throw on one rank only.
    let finite = localImageEmbeddings.allSatisfy(\.isFinite) && localReportEmbeddings.allSatisfy(\.isFinite)
    if try comm.allreduce(finite ? 1 : 0, .min) == 0 {
        throw RetrievalError("an image or report embedding is not finite (NaN or ∞); check the encoder's output")
    }
    let keys = try SharedKeys(gathering: localReportEmbeddings, dimension: dimension, comm: comm)
    let reportCount = keys.count
    if reportCount == 0 { throw RetrievalError("no reports to pair with (the report corpus is empty)") }
    let imageOffset = try globalRowOffset(localCount: localImageCount, comm: comm)
    let hasLabels = try comm.allgather([localImageLabels == nil ? 0 : 1, localReportLabels == nil ? 0 : 1])
    let imageLabelsKnown = hasLabels.enumerated().allSatisfy { $0.offset % 2 == 1 || $0.element == 1 }
    let reportLabelsKnown = hasLabels.enumerated().allSatisfy { $0.offset % 2 == 0 || $0.element == 1 }
    let imageLabels: [Int]? = imageLabelsKnown ? try comm.allgatherv(localImageLabels ?? []).values : nil
    let reportLabels: [Int]? = reportLabelsKnown ? try comm.allgatherv(localReportLabels ?? []).values : nil

    let strategy = options.strategy
    if case .sampleTopK(let k) = strategy, k > reportCount {
        throw RetrievalError("\(strategy) needs at least \(k) reports, the corpus has \(reportCount) "
                                 + "(lower K or add reports)")
    }
    if strategy == .oracle {
        guard let imageLabels, let reportLabels else {
            throw RetrievalError("the oracle strategy needs labels for every image and report "
                                     + "(pass localImageLabels and localReportLabels on every rank)")
        }
        if let unknown = imageLabels.firstIndex(where: { $0 < 0 }) {
            throw RetrievalError("the oracle strategy needs every image's label; image \(unknown) has none")
        }
        let available = Set(reportLabels)
        if let missing = Set(imageLabels).subtracting(available).min() {
            throw RetrievalError("oracle pairing: no report has label \(missing), which some images have "
                                     + "(the class-matched oracle needs at least one report per class)")
        }
    }

    // Local search.
    let queries = l2NormalizedRows(localImageEmbeddings, dimension: dimension)
    let recordedK = min(options.recordedK, reportCount)
    var searchK = recordedK
    if case .sampleTopK(let k) = strategy { searchK = max(searchK, k) }
    let top = keys.topK(normalizedQueries: queries, k: searchK, blocks: options.blocks)
    var chosen = [Int](repeating: 0, count: localImageCount)
    var chosenScores = [Float](repeating: 0, count: localImageCount)
    switch strategy {
    case .top1:
        for r in 0..<localImageCount { (chosen[r], chosenScores[r]) = (top.indices[r * searchK], top.scores[r * searchK]) }
    case .sampleTopK(let k):
        for r in 0..<localImageCount {
            var generator = pairingGenerator(seed: options.seed, imageIndex: imageOffset + r)
            let p = r * searchK + generator.nextInt(upperBound: k)
            (chosen[r], chosenScores[r]) = (top.indices[p], top.scores[p])
        }
    case .random:
        queries.withUnsafeBufferPointer { q in
            for r in 0..<localImageCount {
                var generator = pairingGenerator(seed: options.seed, imageIndex: imageOffset + r)
                chosen[r] = generator.nextInt(upperBound: reportCount)
                chosenScores[r] = keys.similarity(normalizedQuery: q.baseAddress! + r * dimension, key: chosen[r])
            }
        }
    case .leastSimilar:
        let bottom = keys.topK(normalizedQueries: queries, k: 1, order: .leastSimilar, blocks: options.blocks)
        (chosen, chosenScores) = (bottom.indices, bottom.scores)
    case .oracle:
        let localLabels = Array(imageLabels![imageOffset ..< imageOffset + localImageCount])
        let matched = localLabels.withUnsafeBufferPointer { queryLabels in
            reportLabels!.withUnsafeBufferPointer { keyLabels in
                keys.topK(normalizedQueries: queries, k: 1, blocks: options.blocks,
                          constraint: LabelConstraint(queryLabels: queryLabels.baseAddress!,
                                                      keyLabels: keyLabels.baseAddress!))
            }
        }
        (chosen, chosenScores) = (matched.indices, matched.scores)
    }

    // Gather everything in global image order.
    let recorded = try top.prefix(recordedK).allgathered(over: comm)
    let allChosen = try comm.allgatherv(chosen).values
    let allScores = try comm.allgatherv(chosenScores).values
    let records = (0..<allChosen.count).map { i in
        PairRecord(image: i, report: allChosen[i], score: allScores[i],
                   topReports: Array(recorded.indices(row: i)), topScores: Array(recorded.scores(row: i)),
                   imageLabel: imageLabels.flatMap { $0[i] >= 0 ? $0[i] : nil },
                   reportLabel: reportLabels.flatMap { $0[allChosen[i]] >= 0 ? $0[allChosen[i]] : nil })
    }
    return PairsFile(split: split, strategy: strategy, seed: options.seed, reportCount: reportCount,
                     recordedK: recordedK, records: records)
}
