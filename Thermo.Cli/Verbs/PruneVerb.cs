using Thermo.Trainer;
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Thermo.Analysis.Run;
using Thermo.Pipeline.Pruning;
using Thermo.Pipeline.Protocols;
using Thermo.Trainer.Models;
using Thermo.Trainer.Evaluation;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo prune</c>: zeroes filters of each run's final model by temperature, oscillation
/// temperature, L1 norm and at random, re-evaluates, writes RUN/pruning/{results,curves}.parquet, and
/// prints the paper's table aggregated over the runs (mean ± sample std).
/// </summary>
public static class PruneVerb
{
    public static Command Build()
    {
        var defaults = new PruneSettings();
        var runs = new Argument<string[]>("RUN") { Description = "Run directories (complete, analysed)", Arity = ArgumentArity.OneOrMore };
        var layer = new Option<string>("--layer") { Description = "Conv layer whose filters are zeroed", DefaultValueFactory = _ => defaults.Layer };
        var criteria = new Option<string>("--criteria") { Description = "Orders to tabulate: temperature, oscillation, l1, random", DefaultValueFactory = _ => "temperature,oscillation,l1,random" };
        var k = new Option<int>("--k") { Description = "Filters removed in the 'without' rows", DefaultValueFactory = _ => defaults.K };
        var m = new Option<int>("--m") { Description = "Filters kept in the 'only' rows", DefaultValueFactory = _ => defaults.M };
        var draws = new Option<int>("--draws") { Description = "Random orders averaged per run (at least 5 recommended)", DefaultValueFactory = _ => defaults.RandomDraws };
        var curves = new Option<string>("--curves") { Description = "Prune-fraction curves: none, layer (the --layer) or all (every conv layer)", DefaultValueFactory = _ => defaults.Curves.ToString().ToLowerInvariant() };
        var structural = new Option<bool>("--structural") { Description = "Also remove the k hottest filters physically: export the smaller model, report parameters and MACs, check its logits" };
        var finetune = new Option<int>("--finetune") { Description = "With --structural: retrain the smaller model this many epochs and report its accuracy", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Also write the runs' results and the table (results.parquet, table.md) into this directory" };
        var command = new Command("prune", "Zero filters by temperature (and L1, random), re-evaluate, and tabulate as the pruning paper")
        {
            runs, layer, criteria, k, m, draws, curves, structural, finetune, output,
        };
        var window = new WindowFlag(command, "Analyse runs that have no analysis first, over this window (auto, last:N or a:b)", null, "--analyze");
        command.SetAction(parse =>
        {
            var settings = new PruneSettings
            {
                Layer = parse.GetValue(layer)!,
                Criteria = ParseCriteria(parse.GetValue(criteria)!),
                K = parse.GetValue(k), M = parse.GetValue(m), RandomDraws = Positive("--draws", parse.GetValue(draws)),
                Curves = CurveScopes.Parse(parse.GetValue(curves)!),
                AnalyzeWindow = window.Value(parse),
                Structural = parse.GetValue(structural),
                FinetuneEpochs = parse.GetValue(finetune) >= 0 ? parse.GetValue(finetune) : throw new ThermoException("--finetune: must be non-negative"),
            };
            if (settings.FinetuneEpochs > 0 && !settings.Structural) throw new ThermoException("--finetune: needs --structural");
            var progress = new ConsoleProgress();
            var results = PruneStage.Run(parse.GetValue(runs)!, settings, Program.ArtifactsDirectory(), progress.Message);
            var table = Aggregation.Table(results, settings.K, settings.M);
            var comparisons = Aggregation.Comparisons(results);
            CliOutput.Result(new { layer = settings.Layer, k = settings.K, m = settings.M, runs = parse.GetValue(runs), table = TableJson(table), comparisons = ComparisonsJson(comparisons) },
                () => Console.WriteLine(Aggregation.Text(table) + Aggregation.ComparisonsText(comparisons)));
            if (parse.GetValue(output) is { } dir)
            {
                PruningFiles.WriteTableSet(dir, results, comparisons, Aggregation.Markdown(table, PruneStage.TableCaption(parse.GetValue(runs)!.Length, settings)) + Aggregation.ComparisonsMarkdown(comparisons), settings.K, settings.M);
                progress.Message($"wrote {Path.Combine(dir, RunLayout.ResultsFile)} and {Path.Combine(dir, RunLayout.TableFile)}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The paired comparisons as plain objects for --json (accuracy differences in points).</summary>
    internal static IEnumerable<object> ComparisonsJson(IReadOnlyList<RowComparison> comparisons) =>
        comparisons.Select(c => new
        {
            comparison = c.Name, runs = c.Accuracy.Runs, mean_difference_points = c.Accuracy.MeanDifference, sd_points = c.Accuracy.StandardDeviation,
            low95_points = c.Accuracy.Low95, high95_points = c.Accuracy.High95, t_p_value = c.Accuracy.TPValue, wilcoxon_p_value = c.Accuracy.WilcoxonPValue,
            holm_t_p_value = c.HolmTPValue, holm_wilcoxon_p_value = c.HolmWilcoxonPValue, equivalence_margin_points = c.Equivalence?.Margin,
            tost_p_value = c.Equivalence?.P, smallest_showable_margin_points = c.Equivalence?.SmallestShowableMargin,
        });

    /// <summary>A table's rows as plain objects for --json.</summary>
    internal static IEnumerable<object> TableJson(IReadOnlyList<TableRow> table) =>
        table.Select(t => new
        {
            criterion = PruningPlan.Name(t.Criterion), experiment = t.Experiment.ToString(), label = t.Label, runs = t.Runs,
            test_accuracy = t.AccuracyMean, test_accuracy_std = t.AccuracyStd, test_loss = t.LossMean, test_loss_std = t.LossStd,
        });

    static int Positive(string flag, int value) => value > 0 ? value : throw new ThermoException($"{flag}: must be positive, got {value}");

    static Criterion[] ParseCriteria(string text) =>
        Flags.List(text)?.Select(c => PruningPlan.Parse(c) ?? throw new ThermoException($"--criteria: unknown criterion '{c}' (known: temperature, oscillation, l1, random)")).Distinct().ToArray()
        ?? throw new ThermoException("--criteria: name at least one criterion");
}
