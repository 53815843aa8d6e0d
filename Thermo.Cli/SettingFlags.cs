using System.Text;
using Thermo.Analysis;
using Thermo.Analysis.Run;

namespace Thermo.Cli;

/// <summary>
/// The one place a library setting becomes a command-line flag. Libraries raise
/// <see cref="SettingException"/> naming the setting in their own words (an analysis setting, or the
/// property of a settings record: <c>nameof(TrainConfig.Epochs)</c>); the CLI names the flag.
/// </summary>
public static class SettingFlags
{
    /// <summary>Settings whose flag is not the kebab-case of their name.</summary>
    static readonly Dictionary<string, string> Exceptions = new()
    {
        ["Layers"] = "--layers",
        ["Groups"] = "--groups",
        ["MsdLayers"] = "--msd-layers",
        ["FitLags"] = "--fit-lags",
        ["Window"] = "--window",
        ["AnalyzeWindow"] = "--window",
        ["Equilibrium"] = "--window",
        ["StepSnapshotEpochs"] = "--step-snapshots",
        ["RandomDraws"] = "--draws",
        ["FinetuneEpochs"] = "--finetune",
        ["L2s"] = "--l2",
        ["L2"] = "--l2",
        ["Lr"] = "--lr",
        ["LrStep"] = "--lr-step",
        ["LrGamma"] = "--lr-gamma",
        ["K"] = "--k",
        ["M"] = "--m",
        ["KOrM"] = "--k/--m",
        ["Ledger"] = "--ledger",
        ["TrainMissing"] = "--no-train",
        ["InitFrom"] = "--init-from",
        ["From"] = "--from",
        ["Out"] = "--out",
        ["LearningRates"] = "--lr",
        ["BatchSizes"] = "--batch-size",
        ["LearningRatesOrBatchSizes"] = "--lr/--batch-size",
        ["SlurmScheduler"] = "--scheduler slurm",
        ["ExtraOptions"] = "--sbatch-option",
        ["Status"] = "--status",
        ["StepEpochs"] = "--steps",
        ["LossesSmoothingsRadii"] = "--losses/--smoothings/--radii",
        ["SmoothingsAndRadii"] = "--smoothings and --radii",
    };

    /// <summary>
    /// Settings that a message names as something to use, when that is more than their flag: a flag of
    /// another verb is named with its command.
    /// </summary>
    static readonly Dictionary<string, string> Mentions = new()
    {
        ["Status"] = "thermo sweep --status",
    };

    /// <summary>The flag of a setting: its own entry, else the kebab-case of its name (WeightDecay → --weight-decay).</summary>
    public static string Flag(string setting)
    {
        if (Exceptions.TryGetValue(setting, out var flag)) return flag;
        var kebab = new StringBuilder("--");
        for (int i = 0; i < setting.Length; i++)
        {
            if (char.IsUpper(setting[i]) && i > 0) kebab.Append('-');
            kebab.Append(char.ToLowerInvariant(setting[i]));
        }
        return kebab.ToString();
    }

    /// <summary>
    /// Another setting as a message names it (<see cref="SettingException.Related"/>): its flag, or with
    /// its command where it is a flag of another verb (Status → thermo sweep --status).
    /// </summary>
    public static string Mention(string setting) => Mentions.TryGetValue(setting, out var words) ? words : Flag(setting);

    /// <summary>
    /// A directory that holds no run, the same wherever it is found: "--flag: DIR: holds no run (…)" for a
    /// directory a flag gave, else the library's message.
    /// </summary>
    public static string Message(NoRunException e) =>
        string.IsNullOrEmpty(e.Setting) ? e.Message : $"{Flag(e.Setting)}: {e.Message}";

    /// <summary>
    /// Something a stage writes only when asked was never written: "PATH: DETAIL" (or "PATH: --flag:
    /// DETAIL" for a path a flag gave) and how to ask for it.
    /// </summary>
    public static string Message(NotWrittenException e)
    {
        var what = string.IsNullOrEmpty(e.Setting) ? $"{e.Path}: {e.Detail}" : $"{e.Path}: {Flag(e.Setting)}: {e.Detail}";
        var flag = Flag(e.WrittenBy);
        return e.WrittenBy switch
        {
            "StepSnapshotEpochs" => $"{what}; train with {flag} K to write them",
            "Curves" => $"{what} (prune with {flag} layer or all)",
            "SlurmScheduler" => $"{what}; submit with {flag}",
            _ => $"{what} (written with {flag})",
        };
    }

    /// <summary>
    /// The one-line message: "RUN: --flag: DETAIL", or "--flag: DETAIL" for a setting rejected on its own;
    /// the other settings the detail names are named by their flags too (<see cref="Mention"/>).
    /// </summary>
    public static string Message(SettingException e)
    {
        var flagged = $"{Flag(e.Setting)}: {e.DetailNaming(Mention)}";
        return string.IsNullOrEmpty(e.Run) ? flagged : $"{e.Run}: {flagged}";
    }
}
