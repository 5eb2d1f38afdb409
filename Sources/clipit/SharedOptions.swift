import ArgumentParser

/// A trained checkpoint and what its model may read besides images: the options of
/// every command that runs a checkpoint (`eval`, `predict`).
struct CheckpointOptions: ParsableArguments {
    @Option(help: "Checkpoint (best.safetensors or last.safetensors of a run).")
    var checkpoint: String

    @Option(help: "Pairs file of the images (or the pairs directory): needed by text models.")
    var pairs: String?

    @Option(help: "Report corpus the pairs index into (default: the checkpoint's data.reports).")
    var reports: String?

    @Option(help: "Global batch size over all ranks.")
    var batch = 128

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }
}
