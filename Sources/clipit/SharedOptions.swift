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

/// An option renamed for one consistent CLI keeps its old name as a hidden alias for one
/// release: the value given under either name (both at once is an error).
func renamedOption<Value>(_ value: Value?, _ alias: Value?, name: String, oldName: String) throws -> Value? {
    if value != nil && alias != nil {
        throw ValidationError("--\(oldName) is the old name of --\(name): pass only --\(name)")
    }
    return value ?? alias
}

/// `renamedOption` for a required option: one of the two names must be given.
func requiredRenamedOption<Value>(_ value: Value?, _ alias: Value?, name: String, oldName: String) throws -> Value {
    guard let given = try renamedOption(value, alias, name: name, oldName: oldName) else {
        throw ValidationError("missing --\(name)")
    }
    return given
}

/// The help of an old option name kept as a hidden alias.
func aliasHelp(of name: String) -> ArgumentHelp {
    ArgumentHelp("Old name of --\(name).", visibility: .hidden)
}
