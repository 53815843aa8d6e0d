namespace Thermo.Cli;

/// <summary>
/// <c>thermo train --preset NAME</c>: a paper's training protocol as a list of flags. Flags given on
/// the command line override the preset's; the run's configuration (run.json) records the result, so
/// a preset is only a spelling and never needed to resume or rerun.
/// </summary>
public static class TrainPresets
{
    /// <summary>The presets: name → (what it is, its flags).</summary>
    public static readonly IReadOnlyDictionary<string, (string Description, string[] Flags)> All = new Dictionary<string, (string, string[])>
    {
        // The thermodynamic-interpretation paper (Sect. 3): modified LeNet on MNIST, plain SGD,
        // regularisation penalty λ = 4·10⁻² (Keras-style, on the kernels), minibatch 32, η = 10⁻²
        // dropped ×0.1 at epochs 300 and 600. The paper states no momentum: plain SGD has none.
        // It states no epoch count either; its figures run past 600, so 900.
        ["thermo-lenet"] = ("the thermodynamic-interpretation paper's LeNet protocol",
            ["--model", "lenet", "--dataset", "mnist", "--optimizer", "sgd", "--momentum", "0", "--lr", "1e-2", "--lr-step", "300", "--lr-gamma", "0.1",
             "--batch-size", "32", "--l2", "4e-2", "--weight-decay", "0", "--dropout", "0", "--epochs", "900"]),
    };

    /// <summary>
    /// The arguments with <c>train</c>'s <c>--preset NAME</c> replaced by the preset's flags, less those the
    /// command line gives itself; other verbs' arguments unchanged.
    /// </summary>
    public static string[] Expand(string[] args)
    {
        int verb = Array.FindIndex(args, a => !a.StartsWith('-'));
        if (verb < 0 || args[verb] != "train") return args;
        int at = Array.FindIndex(args, verb + 1, a => a == "--preset" || a.StartsWith("--preset=", StringComparison.Ordinal));
        if (at < 0) return args;
        bool inline = args[at].Contains('=');
        if (!inline && at + 1 >= args.Length) throw new Thermo.Trainer.ThermoException("--preset: give a preset's name (" + string.Join(", ", All.Keys) + ")");
        var name = inline ? args[at].Split('=', 2)[1] : args[at + 1];
        if (!All.TryGetValue(name, out var preset))
            throw new Thermo.Trainer.ThermoException($"--preset: '{name}' is not a preset (known: {string.Join(", ", All.Keys)})");
        var rest = args.Where((_, i) => i != at && (inline || i != at + 1)).ToList();
        if (rest.Contains("--config") || rest.Contains("--resume")) throw new Thermo.Trainer.ThermoException("--preset: cannot be given with --config or --resume (they carry the whole configuration)");
        var given = rest.Select(a => a.Split('=', 2)[0]).ToHashSet();
        var added = new List<string>();
        for (int i = 0; i < preset.Flags.Length; i += 2)
            if (!given.Contains(preset.Flags[i])) added.AddRange([preset.Flags[i], preset.Flags[i + 1]]);
        return [.. rest.Take(verb + 1), .. added, .. rest.Skip(verb + 1)];
    }
}
