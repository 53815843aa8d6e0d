using System.CommandLine;
using Thermo.Analysis;
using Thermo.Analysis.Checkpoints;

namespace Thermo.Cli;

/// <summary>
/// The options of the verbs that read a checkpoint series of another trainer (<c>analyze --out</c>,
/// <c>import</c>): where the output goes, which tensors are left out, which layers hold their units
/// along dim 1, and whether gaps in a declared spacing are accepted.
/// </summary>
public sealed class CheckpointFlags
{
    public readonly Option<string> Out;
    public readonly Option<string[]> Exclude = new("--exclude")
    {
        Description = "Leave out the tensors whose key (wrapper prefixes stripped) matches this glob (* and ?); repeatable or comma-separated",
        AllowMultipleArgumentsPerToken = false,
    };
    public readonly Option<string[]> UnitsAlongDim1 = new("--units-along-dim1")
    {
        Description = "Layers (globs) whose 2-D weights are stored (in, out), e.g. Hugging Face GPT-2's Conv1D ('*.attn.c_attn'): their units are columns; repeatable or comma-separated",
    };
    public readonly Option<bool> AcceptGaps = new("--accept-gaps")
    {
        Description = "Analyse a series whose declared spacing (Hugging Face save_steps, a constant step in the names) has missing checkpoints, as it is; the outputs say so",
    };

    public CheckpointFlags(string outDescription = "Analyse the inputs as one checkpoint series in place and write the tables here (never beside the checkpoints)")
    {
        Out = new Option<string>("--out") { Description = outDescription };
    }

    /// <summary>The reading settings the flags give.</summary>
    public CheckpointReadOptions ReadOptions(ParseResult parse) =>
        CheckpointRuns.ReadOptions(Patterns(parse.GetValue(Exclude)), Patterns(parse.GetValue(UnitsAlongDim1)));

    /// <summary>The first checkpoint-only flag given, for a verb run on Thermo runs (null: none).</summary>
    public string? GivenWithoutOut(ParseResult parse) =>
        parse.GetResult(Exclude) is { Implicit: false } ? "--exclude"
        : parse.GetResult(UnitsAlongDim1) is { Implicit: false } ? "--units-along-dim1"
        : parse.GetValue(AcceptGaps) ? "--accept-gaps" : null;

    static string[] Patterns(string[]? values) =>
        (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
}
