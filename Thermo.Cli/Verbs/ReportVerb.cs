using Thermo.Analysis.Run;
using Thermo.Trainer.Training;
using Thermo.Trainer;
using System.CommandLine;
using Thermo.Pipeline.Report;

namespace Thermo.Cli.Verbs;

/// <summary><c>thermo report</c>: the papers' figures and tables for runs, as one offline HTML page per run (PNG files beside it).</summary>
public static class ReportVerb
{
    public static Command Build()
    {
        var runs = new Argument<string[]>("RUN") { Description = "Run directories", Arity = ArgumentArity.OneOrMore };
        var layer = new Option<string>("--layer") { Description = "Layer of the per-filter figures (default: the first analysed per filter)" };
        var output = new Option<string>("--out") { Description = "With several runs: directory of the page comparing them (default: report/ beside the first run)" };
        var width = new Option<int>("--width") { Description = "Figure width in pixels", DefaultValueFactory = _ => 960 };
        var height = new Option<int>("--height") { Description = "Figure height in pixels", DefaultValueFactory = _ => 540 };
        var command = new Command("report", "Write RUN/report/index.html (interactive, self-contained) and figures.html with PNG figures: training, temperatures, trajectories, filters, MSD, gradient noise, pruning")
        {
            runs, layer, output, width, height,
        };
        command.SetAction(parse =>
        {
            var options = new ReportOptions(parse.GetValue(layer),
                parse.GetValue(width) is >= 200 and <= 4000 ? parse.GetValue(width) : throw new ThermoException("--width: must lie in 200..4000"),
                parse.GetValue(height) is >= 150 and <= 4000 ? parse.GetValue(height) : throw new ThermoException("--height: must lie in 150..4000"));
            var dirs = parse.GetValue(runs)!;
            foreach (var run in dirs)
                if (!Directory.Exists(run)) throw new ThermoException($"{run}: run directory does not exist");
            var progress = new ConsoleProgress();
            var pages = new List<ReportResult>();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 0; i < dirs.Length; i++)
            {
                progress.Message($"report of {dirs[i]} ({i + 1}/{dirs.Length}{(i > 0 ? $", ETA {clock.Elapsed / i * (dirs.Length - i):mm\\:ss}" : "")}) …");
                pages.Add(RunReport.WriteRun(dirs[i], options, progress.Message));
            }
            if (dirs.Length > 1)
            {
                var dir = parse.GetValue(output) ?? RunLayout.ReportBeside(dirs[0]);
                progress.Message($"report comparing {dirs.Length} runs …");
                pages.Add(RunReport.WriteRuns(dirs, dir, options, progress.Message));
            }
            CliOutput.Result(new { pages = pages.Select(p => new { page = p.Page, figures_page = p.FiguresPage, figures = p.Figures, tables = p.Tables }) },
                () => { foreach (var p in pages) Console.WriteLine($"{p.Page} (interactive) and {p.FiguresPage} ({p.Figures.Count} figures, {p.Tables.Count} tables)"); });
            return ExitCodes.Ok;
        });
        return command;
    }
}
