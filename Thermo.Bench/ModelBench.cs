using System.Diagnostics;
using Thermo.Trainer.Models;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// Issue 6's benchmark: training throughput of every model on this machine's cores — forward, backward
/// and an SGD step on minibatches of the model's input size (random images, and for gcn and gat the SLIC
/// graphs of random images: the figure is about arithmetic, not data), median over repeats after a warm-up.
/// </summary>
static class ModelBench
{
    public static void Run(bool quick, Action<string, string, string, bool?> report, Func<IEnumerable<double>, double> median)
    {
        torch.set_num_threads(Environment.ProcessorCount);
        var models = new (string Name, int Channels, int Size, int Batch, string Unit)[]
        {
            ("fourconv", 1, 28, 128, "images"), ("lenet", 1, 28, 32, "images"), ("mlp2", 1, 28, 256, "images"), ("mlp3", 1, 28, 256, "images"),
            ("cifarnet", 3, 32, 256, "images"), ("stlnet", 3, 96, 64, "images"), ("gcn", 1, 28, 128, "graphs"), ("gat", 1, 28, 128, "graphs"),
        };
        foreach (var (name, channels, size, batch, unit) in models)
        {
            manual_seed(1);
            using var model = ModelFactory.Create(name, channels, size, size, 10, null, 0.1);
            using var optimizer = optim.SGD(model.parameters(), 1e-3, momentum: 0.9);
            using var x = ImageGraphs.TakesGraph(name) ? PaddedGraphs.OfNoise(batch, size, size, seed: 1) : rand(batch, channels, size, size);
            using var y = randint(0, 10, batch);
            model.train();
            void Step()
            {
                using var scope = NewDisposeScope();
                optimizer.zero_grad();
                nn.functional.cross_entropy(model.forward(x), y).backward();
                optimizer.step();
            }
            for (int i = 0; i < 2; i++) Step();
            int steps = quick ? 2 : 5;
            var rates = Enumerable.Range(0, quick ? 2 : 3).Select(_ =>
            {
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < steps; i++) Step();
                return steps * batch / sw.Elapsed.TotalSeconds;
            }).ToList();
            long parameters = model.parameters().Sum(p => p.numel());
            report($"training throughput, {name} ({parameters:N0} parameters, {size}×{size}×{channels} inputs{(ImageGraphs.TakesGraph(name) ? $" as {ImageGraphs.Slic} graphs of {x.shape[1]} nodes at most" : "")}, batch {batch})", $"{median(rates):F0} {unit}/s", "—", null);
        }
    }
}
