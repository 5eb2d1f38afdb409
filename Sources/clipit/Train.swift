import ArgumentParser
import Configuration
import DataParallel
import Datasets
import Foundation
import Training

/// `clipit train`: Stage 2, data-parallel (docs/training.md).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train CLIP-IT, a baseline or an ablation, data-parallel over the ranks of the job.",
        discussion: """
            The configuration starts from a preset (--preset, or model.preset of --config; one of \
            them is required), then the YAML file of --config, then --set key=value overrides \
            and the explicit flags below. \
            The output directory receives config.yaml (the effective configuration), \
            metrics.jsonl, best.safetensors (best validation balanced accuracy), \
            last.safetensors and summary.json. --resume CKPT continues a run exactly where \
            its checkpoint stopped, with the checkpoint's configuration (overrides still apply).

            Data: --data DIR reads DIR/train.cds, DIR/val.cds (if present) and DIR/reports.jsonl \
            (if present); --pairs DIR reads DIR/train.pairs.jsonl (or train.jsonl, \
            pairs-train.jsonl) and the same for val. Run unchanged on one rank or under \
            mpirun/srun; the loss trajectory does not depend on the number of ranks.

            Pretrained towers: --set model.init_vision=DIR (a timm, transformers CLIP or \
            open_clip folder, e.g. UNI) and --set model.init_text=DIR (CLIP or open_clip, e.g. \
            PLIP) take the tower architecture, weights, image preprocessing and CLIP BPE \
            tokenizer from the folders (docs/running-the-paper-setup.md, docs/training.md).
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @Option(help: "YAML configuration file (configs/*.yaml).")
    var config: String?

    @Option(help: "Model preset: tiny or demo (model.preset).")
    var preset: String?

    @Option(help: "Directory with train.cds, val.cds and optionally reports.jsonl.")
    var data: String?

    @Option(help: "Training .cds file (data.train).")
    var train: String?

    @Option(help: "Validation .cds file (data.val).")
    var val: String?

    @Option(help: "Pairs file of the training split, or the directory with the pairs of every split.")
    var pairs: String?

    @Option(help: "Pairs file of the validation split (data.val_pairs; the text-only method needs it).")
    var valPairs: String?

    @Option(help: "Report corpus the pairs index into (data.reports).")
    var reports: String?

    @Option(help: "Training method: unimodal, unimodal-lora, clipit, text-only, no-distill, vision-logits-only, no-text-lora, no-vision-lora, early-fusion, full-finetune, text-drop:K, clipit-kd, clipit-contrastive, clipit-fusion, retriever-kd.")
    var method: String?

    @Option(help: "With --method text-only: train K out-of-fold teachers into --out and write --out/teacher.safetensors (distill.folds).")
    var folds: Int?

    @Option(help: "Teachers' logits for the soft-target term of clipit-kd (distill.teacher; default: train them first into --out/teachers).")
    var teacher: String?

    @Option(help: "Unlabelled images (.cds) that join the distillation terms (data.unlabeled).")
    var unlabeled: String?

    @Option(help: "Pairs file of the unlabelled images, or the pairs directory (data.unlabeled_pairs; default: from --pairs).")
    var unlabeledPairs: String?

    @Option(help: "Unlabelled images added to every global batch (train.unlabeled_batch_size).")
    var unlabeledBatch: Int?

    @Option(help: "Seed of the weights, data order, augmentation and dropout.")
    var seed: Int?

    @Option(help: "Output folder of the run, created if missing (default with --resume: the checkpoint's folder).")
    var out: String?

    @Option(help: ArgumentHelp("Checkpoint to resume from (last.safetensors of an interrupted run), or 'auto': "
                               + "continue --out from its last.safetensors when it has one, start it otherwise.",
                               valueName: "checkpoint|auto"))
    var resume: String?

    @Flag(help: "Replace a run already in --out (otherwise an existing run is refused).")
    var overwrite = false

    // Setting flags: each is `--set KEY=VALUE` for the key in its help, applied after the
    // --set options (`settingOverrides`).

    @Option(help: "Epochs (train.epochs).")
    var epochs: Int?

    @Option(help: "Global batch size over all ranks (train.batch_size).")
    var batch: Int?

    @Option(help: "Global batch size of validation (train.eval_batch_size).")
    var evalBatch: Int?

    @Option(help: "Cap the run at this many steps; the schedule is sized to it (train.max_steps).")
    var maxSteps: Int?

    @Option(help: "Stop after this many steps as if interrupted, writing last.safetensors (train.stop_after_steps).")
    var stopAfterSteps: Int?

    @Option(help: "Validations per epoch (train.validations_per_epoch).")
    var validationsPerEpoch: Int?

    @Option(help: "Images per micro-batch of deterministic training (train.micro_batch_size).")
    var microBatch: Int?

    @Flag(inversion: .prefixedNo, help: "Bit-identical training on any rank count (train.deterministic; default on).")
    var deterministic: Bool?

    @Option(help: "Also write last.safetensors every this many steps (train.checkpoint_every).")
    var checkpointEvery: Int?

    @Flag(inversion: .prefixedNo, help: "Store the frozen weights in checkpoints too (train.save_frozen).")
    var saveFrozen: Bool?

    @Option(help: "Stop when a loss exceeds this many times the median of the last 50 (train.divergence_factor; 0 off).")
    var divergenceFactor: Float?

    @Option(help: "Plain progress lines every this many steps when not on a terminal (train.log_every).")
    var logEvery: Int?

    @Option(help: "adam, adamw or sgd (optim.optimizer).")
    var optimizer: String?

    @Option(help: "Learning rate (optim.lr).")
    var lr: Float?

    @Option(help: "Weight decay (optim.weight_decay).")
    var weightDecay: Float?

    @Option(help: "Adam β1 (optim.beta1).")
    var beta1: Float?

    @Option(help: "Adam β2 (optim.beta2).")
    var beta2: Float?

    @Option(help: "Adam ε (optim.epsilon).")
    var epsilon: Float?

    @Option(help: "SGD momentum (optim.momentum).")
    var momentum: Float?

    @Option(help: "Global gradient-norm clipping, 0 for none (optim.grad_clip).")
    var gradClip: Float?

    @Option(help: "constant, cosine or warmup-cosine (optim.schedule).")
    var schedule: String?

    @Option(help: "Floor of the cosine schedule (optim.eta_min).")
    var etaMin: Float?

    @Option(help: "Linear warm-up steps of the warmup-cosine schedule (optim.warmup_steps).")
    var warmupSteps: Int?

    @Option(help: "LoRA rank of both towers (model.lora.rank).")
    var loraRank: Int?

    @Option(help: "LoRA α of both towers (model.lora.alpha).")
    var loraAlpha: Float?

    @Option(help: "Dropout on the LoRA input (model.lora.dropout).")
    var loraDropout: Float?

    @Option(help: "λ of the distillation term (model.distillation_weight).")
    var distillationWeight: Float?

    @Option(help: "mutual or stopped: whether the distillation term trains the text tower (model.text_gradient).")
    var textGradient: String?

    @Option(help: "α of the soft-target term (distill.kd_weight).")
    var kdWeight: Float?

    @Option(help: "T of the soft-target term (distill.kd_temperature).")
    var kdTemperature: Float?

    @Option(help: "Weight of the contrastive term (distill.contrastive_weight).")
    var contrastiveWeight: Float?

    @Option(help: "τ of the contrastive term (distill.contrastive_temperature).")
    var contrastiveTemperature: Float?

    @Option(help: "Retriever export whose image tower gives the targets of retriever-kd (distill.retriever).")
    var retriever: String?

    @Option(help: "Pretrained vision tower: a model folder or tower file (model.init_vision).")
    var initVision: String?

    @Option(help: "Pretrained text tower: a model folder or tower file (model.init_text).")
    var initText: String?

    @Option(help: "imagenet, clip or unit image normalisation (data.normalization).")
    var normalization: String?

    @Flag(inversion: .prefixedNo, help: "Training augmentation (data.augment).")
    var augment: Bool?

    @Option(help: "word, or clip: the BPE tokenizer of the text model folder (data.tokenizer).")
    var tokenizer: String?

    /// The setting flags given, as `KEY=VALUE` overrides.
    var settingOverrides: [String] {
        let settings: [(key: String, value: (any CustomStringConvertible)?)] = [
            ("train.epochs", epochs), ("train.batch_size", batch), ("train.eval_batch_size", evalBatch),
            ("train.max_steps", maxSteps), ("train.stop_after_steps", stopAfterSteps),
            ("train.validations_per_epoch", validationsPerEpoch), ("train.micro_batch_size", microBatch),
            ("train.deterministic", deterministic), ("train.checkpoint_every", checkpointEvery),
            ("train.save_frozen", saveFrozen), ("train.divergence_factor", divergenceFactor), ("train.log_every", logEvery),
            ("optim.optimizer", optimizer), ("optim.lr", lr), ("optim.weight_decay", weightDecay), ("optim.beta1", beta1),
            ("optim.beta2", beta2), ("optim.epsilon", epsilon), ("optim.momentum", momentum),
            ("optim.grad_clip", gradClip), ("optim.schedule", schedule), ("optim.eta_min", etaMin),
            ("optim.warmup_steps", warmupSteps), ("model.lora.rank", loraRank), ("model.lora.alpha", loraAlpha),
            ("model.lora.dropout", loraDropout), ("model.distillation_weight", distillationWeight),
            ("model.text_gradient", textGradient), ("model.init_vision", initVision), ("model.init_text", initText),
            ("data.normalization", normalization), ("data.augment", augment), ("data.tokenizer", tokenizer),
            ("distill.folds", folds), ("distill.teacher", teacher), ("data.unlabeled", unlabeled),
            ("train.unlabeled_batch_size", unlabeledBatch), ("distill.kd_weight", kdWeight),
            ("distill.kd_temperature", kdTemperature), ("distill.contrastive_weight", contrastiveWeight),
            ("distill.contrastive_temperature", contrastiveTemperature), ("distill.retriever", retriever),
        ]
        return settings.compactMap { setting in setting.value.map { "\(setting.key)=\($0)" } }
    }

    @Option(name: .customLong("set"), help: ArgumentHelp("Override any config key, e.g. --set optim.schedule=cosine (repeatable).", valueName: "key=value"))
    var overrides: [String] = []

    @Flag(help: "No progress display.")
    var quiet = false

    func validate() throws {
        if (resume == nil || resume == "auto") && out == nil {
            throw ValidationError("--out RUNDIR is required (or --resume CKPT)")
        }
        if overwrite && resume != nil { throw ValidationError("--overwrite replaces a run; --resume continues one: pass one") }
        if let method { _ = try TrainingMethod(parsing: method) }
        for value in [epochs, batch, evalBatch, maxSteps, stopAfterSteps, validationsPerEpoch, warmupSteps, loraRank,
                      microBatch, checkpointEvery, logEvery, unlabeledBatch].compactMap({ $0 }) where value < 0 {
            throw ValidationError("counts must not be negative, got \(value)")
        }
    }

    /// Trains; on SIGTERM, SIGINT or SIGUSR1 every rank stops after the same step with a
    /// checkpoint of it and the process exits with `StopSignals.exitCode` (75).
    func run() throws {
        try communicator.runStoppable { comm, signals in
            let resume = DataParallel.checkpointToResume(resume, runFolder: out ?? ".")
            var config = try resolveConfig(resume: resume)
            let output = out ?? ((resume ?? ".") as NSString).deletingLastPathComponent
            if folds != nil && config.method == .textOnly {   // the out-of-fold teachers of clipit-kd
                try FoldTeachers.train(config: config.effective(), comm: comm, outputDirectory: output,
                                       showProgress: !quiet, parallelWorkers: true)
                return false
            }
            if config.distill.kdWeight > 0 && config.distill.teacher.isEmpty {
                // The student's teachers first, in the same job (reused when a stopped job resumes).
                let folder = output + "/teachers", file = folder + "/teacher.safetensors"
                config.distill.teacher = resume != nil && FileManager.default.fileExists(atPath: file) ? file
                    : try FoldTeachers.train(config: FoldTeachers.teacherConfig(for: config.effective()), comm: comm,
                                             outputDirectory: folder, showProgress: !quiet, parallelWorkers: true)
            }
            let trainer = try Trainer(config: config, comm: comm, outputDirectory: output.isEmpty ? "." : output,
                                      resume: resume, showProgress: !quiet, parallelWorkers: true, overwrite: overwrite,
                                      stopSignals: signals)
            return try trainer.run().stoppedBySignal != nil
        }
    }

    /// What `clipit train` says when neither a configuration nor a preset chooses the
    /// model: silently training the 16 px test preset would surprise everyone.
    static func noModelMessage(configFolder: String = "configs") -> String {
        let configs = ((try? FileManager.default.contentsOfDirectory(atPath: configFolder)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { configFolder + "/" + $0 }
        return "choose the model: --config FILE"
            + (configs.isEmpty ? "" : " (here: \(configs.joined(separator: ", ")))")
            + " or --preset NAME (\(TrainingConfig.presetNames.joined(separator: ", ")): tiny is a 16 px test model, "
            + "demo a small 64 px ViT); docs/training.md lists the keys"
    }

    /// Preset ← config file ← --set ← the setting flags (or the checkpoint's configuration
    /// when resuming, with the same overrides on top). The setting flags are `--set`
    /// overrides applied last (`settingOverrides`); only `--preset` acts before, as it
    /// chooses the base.
    func resolveConfig(resume: String?) throws -> TrainingConfig {
        if resume == nil && config == nil && preset == nil && !overrides.contains(where: { $0.hasPrefix("model.preset=") }) {
            throw ValidationError(Self.noModelMessage())
        }
        let yaml = try config.map(ConfigurationResolver.readFile)
        let base = try resume.map { try Checkpoint.open($0).header.config }
        var c = try TrainingConfig.resolve(yaml: yaml, overrides: overrides + settingOverrides, base: base, preset: preset,
                                           method: method)
        if let seed { c.seed = seed }
        if let data {
            let folder = try DataFolder(data)
            c.data.train = try folder.requiredSplit("train")
            if val == nil, let found = folder.split("val") { c.data.val = found }
            if reports == nil, let found = folder.reports { c.data.reports = found }
        }
        if let train { c.data.train = train }
        if let val { c.data.val = val }
        if let reports { c.data.reports = reports }
        if let pairs {
            c.data.trainPairs = try resolvePairsPath(pairs, split: "train")
            if valPairs == nil, let found = try resolvePairsPath(inFolder: pairs, split: "val") { c.data.valPairs = found }
        }
        if let valPairs { c.data.valPairs = valPairs }
        if let unlabeledPairs {
            c.data.unlabeledPairs = try resolvePairsPath(unlabeledPairs, split: "unlabeled")
        } else if c.data.unlabeledPairs.isEmpty, !c.data.unlabeled.isEmpty, let pairs,
                  let found = try resolvePairsPath(inFolder: pairs, split: "unlabeled") {
            c.data.unlabeledPairs = found
        }
        if c.train.unlabeledBatchSize == 0 && !c.data.unlabeled.isEmpty && unlabeledBatch == nil
            && c.method.buildsCLIPITModel {
            c.train.unlabeledBatchSize = c.train.batchSize   // one unlabelled image per labelled one, unless set
        }
        return c
    }
}
