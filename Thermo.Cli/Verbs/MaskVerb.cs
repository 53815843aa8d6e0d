using System.CommandLine;
using Thermo.Analysis;
using Thermo.Analysis.Run;
using Thermo.Trainer;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo mask ANALYSIS --criterion hot --count N --out mask.json</c>: the hottest or coldest units
/// of each layer of an analysis, as a thermo-prune-mask/1 file that PyTorch applies with
/// <c>torch.nn.utils.prune.custom_from_mask</c> (docs/guide/pytorch.md).
/// </summary>
public static class MaskVerb
{
    public static Command Build()
    {
        var analysis = new Argument<string>("analysis") { Description = "An analysis directory (analyze --out DIR) or a Thermo run (its analysis/)" };
        var criterion = new Option<string>("--criterion") { Description = "hot (the highest temperatures) or cold", DefaultValueFactory = _ => "hot" };
        var count = new Option<int>("--count") { Description = "Units to prune per layer", Required = true };
        var layers = new Option<string>("--layers") { Description = "Layers, comma-separated (default: every layer with per-unit temperatures)" };
        var bias = new Option<bool>("--bias") { Description = "Mask each unit's bias too" };
        var output = new Option<string>("--out") { Description = "The mask file to write", Required = true };
        var command = new Command("mask", "The hottest or coldest units of each layer as a prune mask PyTorch applies")
        {
            analysis, criterion, count, layers, bias, output,
        };
        command.SetAction(parse =>
        {
            var source = parse.GetValue(analysis)!;
            var table = File.Exists(Path.Combine(source, RunLayout.TemperatureFile)) ? Path.Combine(source, RunLayout.TemperatureFile) : RunLayout.Temperature(source);
            if (!File.Exists(table))
                throw new ThermoException($"{source}: holds no {RunLayout.TemperatureFile} (analyse it first: thermo analyze)");
            var text = CheckpointRuns.PruneMask(table, parse.GetValue(criterion)!, parse.GetValue(count), Flags.List(parse.GetValue(layers))!, parse.GetValue(bias));
            var path = parse.GetValue(output)!;
            AtomicFiles.WriteAllText(path, text);
            CliOutput.Result(new { mask = path, criterion = parse.GetValue(criterion), count = parse.GetValue(count) }, () =>
                Console.WriteLine($"{path}: {parse.GetValue(count)} {parse.GetValue(criterion)} units per layer, from {table}"));
            return ExitCodes.Ok;
        });
        return command;
    }
}
