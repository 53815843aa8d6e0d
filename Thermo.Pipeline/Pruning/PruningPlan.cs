using Thermo.Trainer.Evaluation;
using Thermo.Analysis.Physics;

namespace Thermo.Pipeline.Pruning;

/// <summary>How the filters of a layer are ordered from "hottest" to "coldest" (docs/THEORY.md "Rankings and pruning criteria").</summary>
public enum Criterion
{
    /// <summary>Equilibrium temperature T_G: hottest = highest.</summary>
    Temperature,
    /// <summary>Oscillation (drift-corrected) temperature: hottest = highest.</summary>
    Oscillation,
    /// <summary>L1 norm of the final weights (Li et al. 2017): "hottest" = largest, so "without the k coldest" prunes the smallest, as Li et al. do.</summary>
    L1,
    /// <summary>A random order, the null baseline; averaged over several draws.</summary>
    Random,
}

/// <summary>The rows of the paper's Tables 2–5.</summary>
public enum Experiment
{
    /// <summary>The final model, nothing zeroed.</summary>
    Original,
    /// <summary>The k hottest filters zeroed.</summary>
    WithoutHottest,
    /// <summary>Every filter but the m hottest zeroed.</summary>
    OnlyHottest,
    /// <summary>The k coldest filters zeroed.</summary>
    WithoutColdest,
    /// <summary>Every filter but the m coldest zeroed.</summary>
    OnlyColdest,
}

/// <summary>Per-filter scores of one layer of one run, as the analysis stage wrote them; <paramref name="RunSeed"/>
/// (the run's training seed) seeds its random orders, so each run gets its own random baselines.</summary>
public sealed record FilterScores(string Layer, double[] Temperature, double[] Oscillation, double[] L1Norm, long RunSeed = 0)
{
    /// <summary>Number of filters (units) of the layer.</summary>
    public int Units => Temperature.Length;
}

/// <summary>Orders and experiment plans: which filters each row of the table zeroes.</summary>
public static class PruningPlan
{
    /// <summary>Filter indices hottest first under <paramref name="criterion"/>; ties keep the lower index first.
    /// <paramref name="draw"/> and the run's seed seed the random order (ignored otherwise).</summary>
    public static int[] HotFirst(FilterScores scores, Criterion criterion, int draw = 0) => criterion switch
    {
        Criterion.Temperature => Ranking.descending(scores.Temperature),
        Criterion.Oscillation => Ranking.descending(scores.Oscillation),
        Criterion.L1 => Ranking.descending(scores.L1Norm),
        Criterion.Random => Ranking.random(RandomSeed(scores.RunSeed, scores.Layer, draw), scores.Units),
        _ => throw new ArgumentOutOfRangeException(nameof(criterion)),
    };

    /// <summary>A seed per (run seed, layer, draw) that does not depend on the process (string.GetHashCode does).</summary>
    static int RandomSeed(long runSeed, string layer, int draw) =>
        unchecked((int)(runSeed * 2_654_435_761L) ^ (layer.Aggregate(17, (h, c) => h * 31 + c) * 1_000_003 + draw));

    /// <summary>The filters an experiment zeroes, given the order hottest first.</summary>
    public static int[] Zeroed(Experiment experiment, int[] hotFirst, int k, int m)
    {
        int units = hotFirst.Length;
        if (k < 1 || k >= units) throw new ArgumentOutOfRangeException(nameof(k), $"k = {k} must lie in 1..{units - 1} for a layer of {units} filters");
        if (m < 1 || m >= units) throw new ArgumentOutOfRangeException(nameof(m), $"m = {m} must lie in 1..{units - 1} for a layer of {units} filters");
        var sorted = (IEnumerable<int> s) => s.Order().ToArray();
        return experiment switch
        {
            Experiment.Original => [],
            Experiment.WithoutHottest => sorted(hotFirst.Take(k)),
            Experiment.OnlyHottest => sorted(hotFirst.Skip(m)),
            Experiment.WithoutColdest => sorted(hotFirst.Skip(units - k)),
            Experiment.OnlyColdest => sorted(hotFirst.Take(units - m)),
            _ => throw new ArgumentOutOfRangeException(nameof(experiment)),
        };
    }

    /// <summary>The row's label in the paper's wording (with the criterion's words for L1 and random).</summary>
    public static string Label(Experiment experiment, Criterion criterion, int k, int m)
    {
        var (hot, cold) = criterion switch
        {
            Criterion.L1 => ("largest-L1", "smallest-L1"),
            Criterion.Random => ("random (first of the order)", "random (last of the order)"),
            Criterion.Oscillation => ("\"hottest\" (oscillation)", "\"coldest\" (oscillation)"),
            _ => ("\"hottest\"", "\"coldest\""),
        };
        return experiment switch
        {
            Experiment.Original => "Original model",
            Experiment.WithoutHottest => $"Without the {k} {hot} filters",
            Experiment.OnlyHottest => $"With only the {m} {hot} filters",
            Experiment.WithoutColdest => $"Without the {k} {cold} filters",
            Experiment.OnlyColdest => $"With only the {m} {cold} filters",
            _ => experiment.ToString(),
        };
    }

    /// <summary>CLI name of a criterion.</summary>
    public static string Name(Criterion c) => c.ToString().ToLowerInvariant();

    /// <summary>Parses a CLI criterion name.</summary>
    public static Criterion? Parse(string name) => name switch
    {
        "temperature" => Criterion.Temperature,
        "oscillation" => Criterion.Oscillation,
        "l1" => Criterion.L1,
        "random" => Criterion.Random,
        _ => null,
    };
}
