using Thermo.Trainer.Models;

namespace Thermo.Trainer.Native;

/// <summary>The self-check cases of a model at its data's shape, for callers that know only its name.</summary>
public static class SelfCheckCases
{
    /// <summary>The input shape each model is trained on by default (channels, height, width, classes).</summary>
    public static (int Channels, int Height, int Width, int Classes) DefaultInput(string model) =>
        model switch
        {
            "cifarnet" => (3, 32, 32, 10),
            "stlnet" => (3, 96, 96, 10),
            _ => (1, 28, 28, 10),
        };

    /// <summary>The model with its default widths at <paramref name="batchSize"/> and at the evaluation batch size.</summary>
    public static IEnumerable<SelfCheckCase> ForModel(string model, int batchSize)
    {
        var (c, h, w, k) = DefaultInput(model);
        return NumericsSelfCheck.ModelCases(model, c, h, w, k, null, batchSize);
    }
}
