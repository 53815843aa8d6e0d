using Thermo.Trainer.Evaluation;
namespace Thermo.Pipeline.Pruning;

/// <summary>One evaluation of the pruning table: a run, a criterion's order (one draw for random), an
/// experiment; <c>Filters</c> is the layer's filter count (0 where unknown).</summary>
public sealed record PruningResult(
    string Run, string Layer, Criterion Criterion, int Draw, Experiment Experiment, int[] Zeroed, double Loss, double Accuracy, int Filters = 0);

/// <summary>One point of a prune-fraction curve: the model with the first <c>Removed</c> filters of an order zeroed.</summary>
public sealed record CurvePoint(
    string Run, string Layer, Criterion Criterion, string Order, int Draw, int Removed, double Loss, double Accuracy);

/// <summary>What to prune and how to tabulate it.</summary>
/// <param name="Layer">The layer whose filters are zeroed (the paper: the first conv layer).</param>
/// <param name="Criteria">Orders to tabulate.</param>
/// <param name="K">Filters removed in the "without" rows.</param>
/// <param name="M">Filters kept in the "only" rows.</param>
/// <param name="RandomDraws">Random orders drawn and averaged (at least 5 by default).</param>
public sealed record PruningOptions(string Layer, IReadOnlyList<Criterion> Criteria, int K = 2, int M = 3, int RandomDraws = 5);

/// <summary>
/// Runs the experiments of one run against its evaluator. Evaluations are memoised by the set of
/// zeroed filters, so a mask shared by two criteria (or two random draws, or two curve points) costs
/// one evaluation; nothing is rebuilt between evaluations.
/// </summary>
public sealed class PruningRunner(string run, IMaskedEvaluator evaluator, Action<string>? progress = null)
{
    readonly Dictionary<string, (double Loss, double Accuracy)> cache = [];

    /// <summary>Evaluations actually made (cache misses).</summary>
    public int Evaluations { get; private set; }

    (double Loss, double Accuracy) Evaluate(string layer, int[] zeroed)
    {
        var key = layer + ":" + string.Join(",", zeroed.Order());
        if (!cache.TryGetValue(key, out var result))
        {
            result = evaluator.Evaluate(new FilterMask(layer, zeroed));
            cache[key] = result;
            Evaluations++;
        }
        return result;
    }

    static IEnumerable<int> Draws(Criterion c, int randomDraws) => c == Criterion.Random ? Enumerable.Range(0, randomDraws) : [0];

    /// <summary>The paper's table for one run: every experiment under every criterion (and random draw).</summary>
    public IReadOnlyList<PruningResult> Table(FilterScores scores, PruningOptions options)
    {
        if (options.K >= scores.Units || options.M >= scores.Units || options.K < 1 || options.M < 1)
            throw new ArgumentException($"{run}: layer {scores.Layer} has {scores.Units} filters; k = {options.K} and m = {options.M} must lie in 1..{scores.Units - 1}");
        var results = new List<PruningResult>();
        foreach (var criterion in options.Criteria)
            foreach (var draw in Draws(criterion, options.RandomDraws))
            {
                var order = PruningPlan.HotFirst(scores, criterion, draw);
                foreach (var experiment in Enum.GetValues<Experiment>())
                {
                    var zeroed = PruningPlan.Zeroed(experiment, order, options.K, options.M);
                    var (loss, accuracy) = Evaluate(scores.Layer, zeroed);
                    results.Add(new PruningResult(run, scores.Layer, criterion, draw, experiment, zeroed, loss, accuracy, scores.Units));
                }
                progress?.Invoke($"{PruningPlan.Name(criterion)}{(criterion == Criterion.Random ? $" draw {draw + 1}" : "")}");
            }
        return results;
    }

    /// <summary>The orders a curve follows for a criterion: both ends of a temperature order, the
    /// smallest L1 first (Li et al.) and the largest, or each random draw.</summary>
    public static IEnumerable<(string Name, int Draw, int[] Order)> CurveOrders(FilterScores scores, Criterion criterion, int randomDraws)
    {
        var hotFirst = PruningPlan.HotFirst(scores, criterion);
        switch (criterion)
        {
            case Criterion.L1:
                yield return ("smallest first", 0, hotFirst.Reverse().ToArray());
                yield return ("largest first", 0, hotFirst);
                break;
            case Criterion.Random:
                for (int d = 0; d < randomDraws; d++) yield return ("random", d, PruningPlan.HotFirst(scores, criterion, d));
                break;
            default:
                yield return ("hottest first", 0, hotFirst);
                yield return ("coldest first", 0, hotFirst.Reverse().ToArray());
                break;
        }
    }

    /// <summary>Prune-fraction curves of one layer: test metrics as 0, 1, …, all filters are removed in each order.</summary>
    public IReadOnlyList<CurvePoint> Curves(FilterScores scores, IReadOnlyList<Criterion> criteria, int randomDraws)
    {
        var points = new List<CurvePoint>();
        foreach (var criterion in criteria)
        {
            foreach (var (name, draw, order) in CurveOrders(scores, criterion, randomDraws))
                for (int removed = 0; removed <= order.Length; removed++)
                {
                    var (loss, accuracy) = Evaluate(scores.Layer, order.Take(removed).Order().ToArray());
                    points.Add(new CurvePoint(run, scores.Layer, criterion, name, draw, removed, loss, accuracy));
                }
            progress?.Invoke($"{scores.Layer} curves: {PruningPlan.Name(criterion)}");
        }
        return points;
    }
}
