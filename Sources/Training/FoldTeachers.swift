import DataParallel
import Datasets
import Distributed
import Formats
import Foundation
import Import
import Kernels
import Model
import Retrieval

/// What a teacher-logits file says of its teachers (`summary.json` of the student too).
public struct TeacherSummary: Codable, Equatable, Sendable {
    /// The teachers' method: `text-only` (the text route) or `unimodal` on the retriever's
    /// image tower (the oracle of `retriever-kd`).
    public var method: String
    public var folds: Int
    /// Each fold teacher's best validation balanced accuracy (nil without a validation split).
    public var foldBalancedAccuracy: [Double?]
    /// The labelled training set the logits belong to, and its size.
    public var train: String
    public var trainCount: Int
    /// The unlabelled pool's size (0 without one): its rows hold the mean of the K teachers.
    public var unlabeledCount: Int
    public var classNames: [String]
    /// The fold of every training image.
    public var fold: [Int]
}

/// A teacher-logits file (`teacher.safetensors`, written by `clipit train --folds K`):
/// tensors `logits` `(train, C)` — each training image's logits from the teacher that did
/// not see it (out-of-fold) — and `unlabeled_logits` `(pool, C)` — the mean of the K
/// teachers' logits on each unlabelled image — with a `TeacherSummary` in the metadata
/// key `clipit.teacher`.
public struct TeacherLogits {
    public static let metadataKey = "clipit.teacher"
    public var summary: TeacherSummary
    public var logits: [Float]
    public var unlabeledLogits: [Float]

    public var classes: Int { summary.classNames.count }

    public init(summary: TeacherSummary, logits: [Float], unlabeledLogits: [Float]) {
        self.summary = summary
        self.logits = logits
        self.unlabeledLogits = unlabeledLogits
    }

    /// Reads and checks a teacher-logits file.
    public init(path: String) throws {
        guard !path.isEmpty else {
            throw TrainingError("the soft-target term (distill.kd_weight > 0) needs teachers' logits: pass --teacher FILE "
                                + "(clipit train --method text-only --folds K writes one) or leave it empty to train them first")
        }
        summary = try Self.summary(path: path)
        let file = try SafeTensorsFile(path: path)
        logits = try file.floats("logits")
        unlabeledLogits = file.contains("unlabeled_logits") ? try file.floats("unlabeled_logits") : []
        let c = summary.classNames.count
        guard c > 0, logits.count == summary.trainCount * c, unlabeledLogits.count == summary.unlabeledCount * c,
              summary.fold.count == summary.trainCount else {
            throw TrainingError("teacher file '\(path)': its tensors do not match its metadata (\(summary.trainCount) "
                                + "training and \(summary.unlabeledCount) unlabelled images × \(c) classes); write it again")
        }
        guard logits.allSatisfy(\.isFinite), unlabeledLogits.allSatisfy(\.isFinite) else {
            throw TrainingError("teacher file '\(path)': its logits are not all finite; train the teachers again")
        }
    }

    /// The `TeacherSummary` of the file at `path`.
    public static func summary(path: String) throws -> TeacherSummary {
        let file = try SafeTensorsFile(path: path)
        guard let json = file.metadata[metadataKey] else {
            throw TrainingError("'\(path)' is not a teacher-logits file (no '\(metadataKey)' metadata); write one with "
                                + "clipit train --method text-only --folds K")
        }
        do {
            return try ProjectJSON.decoder().decode(TeacherSummary.self, from: Data(json.utf8))
        } catch {
            throw TrainingError("teacher file '\(path)': unreadable '\(metadataKey)' metadata (\(error))")
        }
    }

    /// Throws unless the logits belong to this training set and pool.
    func check(trainPath: String, trainCount: Int, unlabeledCount: Int, classes: [String]) throws {
        guard summary.trainCount == trainCount, summary.classNames == classes else {
            throw TrainingError("the teachers' logits were made for \(summary.trainCount) training images of classes "
                                + "\(summary.classNames) ('\(summary.train)'); '\(trainPath)' has \(trainCount) of \(classes): "
                                + "train the teachers on this training set")
        }
        guard summary.unlabeledCount == unlabeledCount else {
            throw TrainingError("the teachers' logits cover \(summary.unlabeledCount) unlabelled images, data.unlabeled has "
                                + "\(unlabeledCount): train the teachers with the same --unlabeled pool")
        }
    }

    /// Writes the file atomically.
    public func write(to path: String) throws {
        let c = classes
        var writer = SafeTensorsWriter(metadata: [Self.metadataKey: String(decoding: try ProjectJSON.encoder(pretty: false).encode(summary), as: UTF8.self)])
        writer.add("logits", shape: [summary.trainCount, c], floats: logits)
        if summary.unlabeledCount > 0 { writer.add("unlabeled_logits", shape: [summary.unlabeledCount, c], floats: unlabeledLogits) }
        try writer.write(to: path)
    }
}

/// Out-of-fold teachers (CLIP-IT.md decision 8, `clipit-kd`): the labelled training set is
/// cut into K folds; teacher k trains on the other folds and gives the logits of its own
/// fold (on its own training reports a teacher is nearly one-hot and adds nothing), and
/// every teacher's logits on the unlabelled pool are averaged.
///
/// Folds are a seeded permutation of the images (position mod K), the same on any rank
/// count; each teacher is a `Trainer` run (deterministic mode makes it the same bits on
/// any rank count) on its folds' items; predictions run in fixed chunks spread over the
/// ranks and gathered, so the file is identical on any rank count.
public enum FoldTeachers {
    /// The fold of each of `count` images.
    public static func folds(count: Int, k: Int, seed: UInt64) -> [Int] {
        var order = Array(0 ..< count)
        var generator = RandomGenerator(seed: derivedSeed(seed, 0xF01D))
        for i in stride(from: count - 1, through: 1, by: -1) { order.swapAt(i, generator.nextInt(upperBound: i + 1)) }
        var fold = [Int](repeating: 0, count: count)
        for (position, image) in order.enumerated() { fold[image] = position % k }
        return fold
    }

    /// The teachers' configuration for a student's: the `text-only` classifier on the
    /// paired reports, or (`distill.target: retriever-image`) a linear probe (`unimodal`)
    /// on the retriever's image tower. Same data, seed, optimiser and loop; no terms of
    /// its own, no unlabelled rows in its batches (the pool is only predicted).
    public static func teacherConfig(for student: TrainingConfig) throws -> TrainingConfig {
        var c = student
        c.distill = DistillSettings(folds: student.distill.folds)
        c.train.unlabeledBatchSize = 0
        c.model.textGradient = .mutual
        if student.distill.target == .retrieverImage {
            let (retriever, metadata) = try RetrieverModel.load(path: student.distill.retriever)
            c.method = .unimodal
            c.model.vision = retriever.config.vision
            c.model.initVision = student.distill.retriever
            c.data.preprocessing = nil
            if let name = metadata[RetrieverModel.normalizationMetadataKey], let parsed = NormalizationName(rawValue: name) {
                c.data.normalization = parsed
            }
        } else {
            c.method = .textOnly
        }
        return c
    }

    /// Trains `config.distill.folds` teachers of `config` (a teacher configuration) into
    /// `outputDirectory/fold-K/` and writes `outputDirectory/teacher.safetensors`; returns
    /// its path. Each teacher is validated like any run; the best validation checkpoint
    /// predicts its fold.
    @discardableResult
    public static func train(config: TrainingConfig, comm: any Communicator, outputDirectory: String,
                             showProgress: Bool = true, parallelWorkers: Bool = false) throws -> String {
        let k = config.distill.folds
        guard k >= 2 else { throw TrainingError("distill.folds must be at least 2, got \(k)") }
        let data = try TrainingData(config: config)
        let count = data.train.count, c = data.classNames.count
        guard count >= k else { throw TrainingError("\(count) training images cannot make \(k) folds") }
        let fold = folds(count: count, k: k, seed: UInt64(truncatingIfNeeded: config.seed))
        var logits = [Float](repeating: 0, count: count * c)
        var poolSum: [Double] = []
        var poolCount = 0
        var accuracies: [Double?] = []
        if comm.rank == 0 { try OutputDirectory.create(outputDirectory) }
        try comm.barrier()
        for f in 0 ..< k {
            let folder = outputDirectory + "/fold-\(f)"
            let heldOut = (0 ..< count).filter { fold[$0] == f }
            let trainer = try Trainer(config: config, comm: comm, outputDirectory: folder, showProgress: showProgress,
                                      parallelWorkers: parallelWorkers, overwrite: true,
                                      trainingItems: (0 ..< count).filter { fold[$0] != f })
            if comm.rank == 0 && showProgress {
                let line = "teachers: fold \(f + 1)/\(k): \(config.method) on \(count - heldOut.count) images, "
                    + "predicting \(heldOut.count)\n"
                FileHandle.standardError.write(Data(line.utf8))
            }
            let summary = try trainer.run()
            accuracies.append(summary.bestBalancedAccuracy)
            let best = folder + "/best.safetensors"
            if FileManager.default.fileExists(atPath: best) {
                try Checkpoint.loadWeights(try Checkpoint.open(best).file, into: trainer.model)
            }
            let assembler = try trainer.predictionAssembler()
            let foldLogits = try predictItems(trainer.model, assembler: assembler, items: heldOut, comm: comm,
                                              chunk: config.train.evalBatchSize)
            for (row, image) in heldOut.enumerated() {
                for j in 0 ..< c { logits[image * c + j] = foldLogits[row * c + j] }
            }
            if let pool = assembler.unlabeled {
                poolCount = pool.count
                let poolLogits = try predictItems(trainer.model, assembler: assembler, items: Array(count ..< count + pool.count),
                                                  comm: comm, chunk: config.train.evalBatchSize)
                if poolSum.isEmpty { poolSum = [Double](repeating: 0, count: pool.count * c) }
                for i in poolLogits.indices { poolSum[i] += Double(poolLogits[i]) }
            }
        }
        let summary = TeacherSummary(method: config.method.description, folds: k, foldBalancedAccuracy: accuracies,
                                     train: config.data.train, trainCount: count, unlabeledCount: poolCount,
                                     classNames: data.classNames, fold: fold)
        let file = TeacherLogits(summary: summary, logits: logits, unlabeledLogits: poolSum.map { Float($0 / Double(k)) })
        let path = outputDirectory + "/teacher.safetensors"
        if comm.rank == 0 {
            try file.write(to: path)
            try AtomicFileWriter.writeJSON(summary, to: outputDirectory + "/teachers.json")
        }
        try comm.barrier()
        return path
    }

    /// The logits `(items.count, C)` of `items` (in order), predicted in chunks of `chunk`
    /// rows: chunk j is rows j·chunk ..< (j+1)·chunk on every rank count, the chunks spread
    /// over the ranks in order and gathered.
    static func predictItems(_ model: any TrainableModel, assembler: BatchAssembler, items: [Int],
                             comm: any Communicator, chunk: Int) throws -> [Float] {
        let c = model.classes, chunks = (items.count + chunk - 1) / chunk
        var local: [Float] = []
        try model.inEvaluationMode {
            for j in ShardedSampler.slice(of: chunks, rank: comm.rank, worldSize: comm.size) {
                let rows = items[j * chunk ..< min((j + 1) * chunk, items.count)]
                let batch = assembler.assemble(rows, inputs: model.predictionInputs, seed: 0, epoch: 0)
                local += UnsafeBufferPointer(start: model.predict(batch), count: rows.count * c)
            }
        }
        let gathered = try comm.allgatherv(local).values
        guard gathered.count == items.count * c else {
            throw TrainingError("teacher predictions: gathered \(gathered.count / max(c, 1)) rows for \(items.count) images")
        }
        return gathered
    }
}

extension Trainer {
    /// An evaluation-transform assembler over the training items (and the unlabelled pool)
    /// with the run's paired text: what a fold teacher predicts with.
    func predictionAssembler() throws -> BatchAssembler {
        let size = config.model.vision.imageSize
        let normalization = try config.normalization()
        let assembler = BatchAssembler(dataset: trainAssembler.dataset,
                                       transform: .evaluation(outputSize: size, normalization: normalization),
                                       text: trainAssembler.text, preprocessing: config.data.preprocessing)
        assembler.unlabeled = trainAssembler.unlabeled
        return assembler
    }
}
