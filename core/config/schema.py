"""The typed config tree: every setting declared once, with its default, bounds, group and vi/en help.

Owns the dataclasses (RunConfig and its sections; DecodingConfig, MergeConfig, AnalysisConfig for the
commands that use a run) and nothing else: reading them from YAML / the CLI / the form is
``core.config.io``, checking them is ``core.config.checks``. Field names are the libraries' own argument
names (peft's ``LoraConfig``, trl's ``SFTConfig``, ``BitsAndBytesConfig``, transformers'
``GenerationConfig``), so building those objects is a plain unpacking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

from core.tasks import TASK_NAMES


def opt(default: Any, *, en: str, vi: str, label_en: str, label_vi: str, group: str = "advanced",
        min: float | None = None, max: float | None = None, step: float | None = None,
        default_factory: Any = None) -> Any:
    """Declare a config field with its help, label, group and bounds in one place."""
    meta = {"help": {"en": en, "vi": vi}, "label": {"en": label_en, "vi": label_vi}, "group": group,
            "min": min, "max": max, "step": step}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


Dtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass
class ModelConfig:
    name_or_path: str = opt(
        "embedded:smollm2-135m-instruct", group="basic",
        label_en="Base model", label_vi="Mô hình gốc",
        en="An embedded model (embedded:smollm2-135m-instruct, embedded:gemma3-270m), a Hugging Face "
           "Hub id (Qwen/Qwen2.5-0.5B-Instruct) or a local folder, e.g. a previous run's merged/ folder.",
        vi="Mô hình có sẵn (embedded:smollm2-135m-instruct, embedded:gemma3-270m), mã mô hình trên "
           "Hugging Face Hub (Qwen/Qwen2.5-0.5B-Instruct) hoặc một thư mục, ví dụ thư mục merged/ của lần chạy trước.")
    load_in_4bit: bool = opt(
        False, group="basic", label_en="Load in 4-bit (QLoRA)", label_vi="Nạp 4-bit (QLoRA)",
        en="Quantize the frozen base weights to 4 bits with bitsandbytes (QLoRA): about 4x less memory "
           "for the weights, slower steps. The adapter itself stays in full precision.",
        vi="Lượng tử hoá trọng số gốc (đóng băng) xuống 4 bit bằng bitsandbytes (QLoRA): bộ nhớ cho trọng số "
           "giảm khoảng 4 lần, mỗi bước chậm hơn. Bản thân adapter vẫn ở độ chính xác đầy đủ.")
    load_in_8bit: bool = opt(
        False, label_en="Load in 8-bit", label_vi="Nạp 8-bit",
        en="Quantize the frozen base weights to 8 bits (LLM.int8): about 2x less memory for the weights than 16-bit. "
           "Runs on a GPU and, with bitsandbytes ≥ 0.50, on the CPU; cannot be combined with 4-bit.",
        vi="Lượng tử hoá trọng số gốc xuống 8 bit (LLM.int8): bộ nhớ cho trọng số giảm khoảng 2 lần so với 16 bit. "
           "Chạy trên GPU và, với bitsandbytes ≥ 0.50, trên CPU; không dùng cùng 4-bit.")
    llm_int8_threshold: float = opt(
        6.0, min=0.0, max=100.0, step=0.5, label_en="8-bit outlier threshold", label_vi="Ngưỡng ngoại lai 8-bit",
        en="LLM.int8: input features with a magnitude above this are multiplied in 16 bits instead of 8 (the "
           "outliers that 8 bits would ruin). 6.0 is the paper's value; lower keeps more in 16 bits (slower, closer "
           "to the original), 0 turns the outlier path off.",
        vi="LLM.int8: các đặc trưng đầu vào có độ lớn vượt ngưỡng này được nhân bằng 16 bit thay vì 8 bit (các giá trị "
           "ngoại lai mà 8 bit sẽ làm hỏng). 6.0 là giá trị của bài báo; thấp hơn thì giữ nhiều phần hơn ở 16 bit "
           "(chậm hơn, gần bản gốc hơn), 0 là tắt nhánh ngoại lai.")
    llm_int8_skip_modules: list[str] = opt(
        None, default_factory=list, label_en="Modules kept out of 8-bit", label_vi="Các lớp không lượng tử hoá 8-bit",
        en="Module names left in full precision when loading in 8-bit (e.g. lm_head; empty: transformers' default, "
           "which already keeps the output layer).",
        vi="Tên các lớp giữ nguyên độ chính xác đầy đủ khi nạp 8-bit (ví dụ lm_head; để trống: mặc định của "
           "transformers, vốn đã giữ lớp đầu ra).")
    llm_int8_enable_fp32_cpu_offload: bool = opt(
        False, label_en="8-bit: allow fp32 CPU offload", label_vi="8-bit: cho phép chuyển phần dư sang CPU (fp32)",
        en="When the model does not fit on the GPU, keep the modules that do not fit on the CPU in float32 instead "
           "of failing (slow). Only matters with a GPU.",
        vi="Khi mô hình không vừa GPU, giữ các lớp không vừa trên CPU ở float32 thay vì báo lỗi (chậm). Chỉ có ý "
           "nghĩa khi có GPU.")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = opt(
        "nf4", label_en="4-bit type", label_vi="Kiểu 4-bit",
        en="nf4 (NormalFloat4) suits normally distributed weights and is the QLoRA paper's choice; fp4 is plain 4-bit float.",
        vi="nf4 (NormalFloat4) hợp với trọng số phân bố chuẩn, là lựa chọn của bài báo QLoRA; fp4 là số thực 4 bit thông thường.")
    bnb_4bit_use_double_quant: bool = opt(
        True, label_en="Double quantization", label_vi="Lượng tử hoá kép",
        en="Also quantize the quantization constants: saves about 0.4 bit per parameter at no measurable quality cost.",
        vi="Lượng tử hoá cả các hằng số lượng tử: tiết kiệm khoảng 0,4 bit mỗi tham số mà gần như không giảm chất lượng.")
    bnb_4bit_compute_dtype: Dtype = opt(
        "auto", label_en="4-bit compute dtype", label_vi="Kiểu số khi tính (4-bit)",
        en="The dtype the 4-bit weights are dequantized to for each matmul. auto: bfloat16 on a GPU that supports it, float32 on CPU.",
        vi="Kiểu số mà trọng số 4-bit được giải lượng tử sang khi nhân ma trận. auto: bfloat16 trên GPU hỗ trợ, float32 trên CPU.")
    dtype: Dtype = opt(
        "auto", label_en="Weights dtype", label_vi="Kiểu số của trọng số",
        en="Precision of the base weights. auto: bfloat16 on a GPU that supports it, float16 on older GPUs; on a CPU, "
           "bfloat16 for training in bf16 (the Mixed precision field), else float32.",
        vi="Độ chính xác của trọng số gốc. auto: bfloat16 trên GPU hỗ trợ, float16 trên GPU cũ; trên CPU, bfloat16 "
           "khi huấn luyện bằng bf16 (ô Độ chính xác hỗn hợp), ngoài ra float32.")
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = opt(
        "auto", label_en="Attention implementation", label_vi="Cách tính attention",
        en="How attention is computed (transformers' attn_implementation). auto: the model's default (sdpa for most). "
           "eager: plain matmuls that keep each layer's attention matrix, so memory grows with the square of the "
           "length (one step of the SmolLM2 defaults: 8.4 GiB against 6.4 with sdpa); isolated steps on a 2-core CPU "
           "were 8-12% faster at 374-1024 tokens, a whole demo run was not. flash_attention_2: on a GPU with the "
           "flash-attn package installed.",
        vi="Cách tính attention (attn_implementation của transformers). auto: mặc định của mô hình (thường là sdpa). "
           "eager: nhân ma trận thông thường, giữ ma trận attention của mỗi lớp nên bộ nhớ tăng theo bình phương độ "
           "dài (một bước của cấu hình mặc định SmolLM2: 8,4 GiB so với 6,4 khi dùng sdpa); từng bước riêng lẻ trên "
           "CPU 2 nhân nhanh hơn 8-12% ở 374-1024 token, cả lần chạy demo thì không. flash_attention_2: trên GPU đã "
           "cài gói flash-attn.")
    trust_remote_code: bool = opt(
        False, label_en="Trust remote code", label_vi="Tin mã từ xa",
        en="Allow a Hub model to run its own Python code when loading. Off by default: turn it on only for a model you trust.",
        vi="Cho phép mô hình trên Hub chạy mã Python riêng khi nạp. Mặc định tắt: chỉ bật với mô hình bạn tin cậy.")


@dataclass
class LoraSection:
    r: int = opt(
        16, group="basic", min=1, max=1024, step=1, label_en="Rank r", label_vi="Hạng r",
        en="Rank of the low-rank update ΔW = B·A. 8–16 suits simple tasks; 64+ for new formats or knowledge. "
           "Higher rank learns more and can forget more.",
        vi="Hạng của phần cập nhật hạng thấp ΔW = B·A. 8–16 hợp với tác vụ đơn giản; 64 trở lên cho định dạng "
           "hoặc kiến thức mới. Hạng cao học được nhiều hơn nhưng cũng dễ quên hơn.")
    lora_alpha: int = opt(
        32, group="basic", min=1, max=4096, step=1, label_en="Alpha", label_vi="Alpha",
        en="Scaling of the update: ΔW is multiplied by alpha/r (alpha/√r with rsLoRA). Keep alpha/r between 1 and 4.",
        vi="Hệ số nhân của phần cập nhật: ΔW được nhân với alpha/r (alpha/√r khi bật rsLoRA). Nên giữ alpha/r trong khoảng 1 đến 4.")
    lora_dropout: float = opt(
        0.05, min=0.0, max=0.9, step=0.01, label_en="LoRA dropout", label_vi="Dropout của LoRA",
        en="Dropout on the adapter's input: a little (0.05–0.1) can help small datasets generalise. It is not free: "
           "a random mask over every adapted layer's input, about a fifth of a CPU training step (the demo preset); "
           "0 is fastest (Unsloth's and LLaMA-Factory's default).",
        vi="Dropout ở đầu vào adapter: một chút (0,05–0,1) có thể giúp dữ liệu nhỏ tổng quát hoá tốt hơn. Nó có giá: "
           "một mặt nạ ngẫu nhiên trên đầu vào của mọi lớp có adapter, khoảng một phần năm thời gian mỗi bước trên "
           "CPU (preset demo); 0 là nhanh nhất (mặc định của Unsloth và LLaMA-Factory).")
    bias: Literal["none", "all", "lora_only"] = opt(
        "none", label_en="Train biases", label_vi="Huấn luyện bias",
        en="Which bias terms are trained. none keeps the merge exact and the adapter small.",
        vi="Những bias nào được huấn luyện. none giữ cho việc gộp chính xác và adapter nhỏ.")
    target_modules: Union[str, list[str]] = opt(
        "all-linear", group="basic", label_en="Target modules", label_vi="Các lớp được gắn LoRA",
        en="Layers that get an adapter: all-linear (every projection but the output head), or a list such as "
           "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.",
        vi="Các lớp được gắn adapter: all-linear (mọi phép chiếu trừ đầu ra), hoặc danh sách như "
           "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.")
    modules_to_save: list[str] = opt(
        None, default_factory=list, label_en="Fully trained modules", label_vi="Các lớp huấn luyện toàn bộ",
        en="Modules trained in full next to the adapter, e.g. lm_head and embed_tokens for continued pre-training "
           "on a new language or vocabulary. They cost much more memory and disk.",
        vi="Các lớp được huấn luyện toàn bộ cùng adapter, ví dụ lm_head và embed_tokens khi tiền huấn luyện tiếp "
           "trên ngôn ngữ hay từ vựng mới. Chúng tốn nhiều bộ nhớ và dung lượng hơn hẳn.")
    use_rslora: bool = opt(
        False, group="basic", label_en="rsLoRA", label_vi="rsLoRA",
        en="Rank-stabilised LoRA: scale by alpha/√r instead of alpha/r, so high ranks keep learning. Recommended at r ≥ 64.",
        vi="LoRA ổn định theo hạng: nhân với alpha/√r thay vì alpha/r để hạng cao vẫn học tốt. Nên dùng khi r ≥ 64.")
    use_dora: bool = opt(
        False, label_en="DoRA", label_vi="DoRA",
        en="Weight-decomposed LoRA: learns a magnitude and a direction separately. Often a little better, about 2x slower.",
        vi="LoRA phân rã trọng số: học riêng độ lớn và hướng. Thường tốt hơn một chút, chậm hơn khoảng 2 lần.")
    init_lora_weights: Literal["default", "gaussian", "olora", "pissa", "pissa_niter_4", "orthogonal"] = opt(
        "default", label_en="Adapter initialisation", label_vi="Khởi tạo adapter",
        en="default: B = 0 so training starts from the base model. olora / pissa start from the weights' principal "
           "directions (they also modify the base weights, which the saved adapter accounts for).",
        vi="default: B = 0 nên huấn luyện bắt đầu đúng từ mô hình gốc. olora / pissa bắt đầu từ các hướng chính của "
           "trọng số (chúng cũng sửa trọng số gốc, adapter đã lưu có tính đến điều này).")
    layers_to_transform: list[int] = opt(
        None, default_factory=list, label_en="Only these layers", label_vi="Chỉ các tầng này",
        en="Indices of the transformer blocks to adapt; empty means all blocks.",
        vi="Chỉ số các khối transformer được gắn adapter; để trống nghĩa là tất cả.")


# the task registry (core.tasks) owns the names; "auto" picks the one that fits the detected schema
Template = Literal[("auto", *TASK_NAMES)]  # type: ignore[valid-type]


@dataclass
class DataConfig:
    source: str = opt(
        "sample:vi_informatics_mcq", group="basic", label_en="Dataset", label_vi="Bộ dữ liệu",
        en="A bundled sample (sample:vi_informatics_mcq, sample:informatics_book, sample:books_price), a local "
           "CSV / JSON / JSONL / Parquet file, or a Hugging Face Hub dataset id.",
        vi="Bộ dữ liệu mẫu có sẵn (sample:vi_informatics_mcq, sample:informatics_book, sample:books_price), tệp "
           "CSV / JSON / JSONL / Parquet trên máy, hoặc mã bộ dữ liệu trên Hugging Face Hub.")
    hub_split: str = opt(
        "train", label_en="Hub split", label_vi="Phần dữ liệu trên Hub",
        en="For a Hub dataset: which split to load.", vi="Với bộ dữ liệu trên Hub: nạp phần (split) nào.")
    column_map: dict[str, str] = opt(
        None, default_factory=dict, label_en="Column mapping", label_vi="Ánh xạ cột",
        en="Which column plays which role (question, answer_a…answer_d, correct_answer, context, title, instruction, "
           "input, output, messages, description, price, text). Empty: detected automatically.",
        vi="Cột nào đóng vai trò gì (question, answer_a…answer_d, correct_answer, context, title, instruction, input, "
           "output, messages, description, price, text). Để trống: tự nhận diện.")
    template: Template = opt(
        "auto", group="basic", label_en="Template", label_vi="Mẫu định dạng",
        en="How a row becomes training text. auto picks the template that fits the detected schema "
           "(MCQ → Vietnamese MCQ generation, title+context → continued pre-training, …).",
        vi="Cách một dòng dữ liệu thành văn bản huấn luyện. auto chọn mẫu hợp với cấu trúc đã nhận diện "
           "(MCQ → sinh câu hỏi trắc nghiệm tiếng Việt, title+context → tiền huấn luyện tiếp, …).")
    use_chat_template: bool = opt(
        False, label_en="Use the model's chat template", label_vi="Dùng mẫu hội thoại của mô hình",
        en="Wrap prompt and answer in the model's own chat template (for instruct models). Off: a plain prompt.",
        vi="Bọc câu lệnh và câu trả lời bằng mẫu hội thoại của chính mô hình (cho mô hình instruct). Tắt: câu lệnh thường.")
    system_prompt: str = opt(
        "", label_en="System prompt", label_vi="Lời nhắc hệ thống",
        en="Optional system message, used with the chat template.", vi="Tin nhắn hệ thống tuỳ chọn, dùng với mẫu hội thoại.")
    max_length: int = opt(
        512, group="basic", min=16, max=32768, step=16, label_en="Max length (tokens)", label_vi="Độ dài tối đa (token)",
        en="Training sequences are cut to this many tokens. Memory and time grow with it.",
        vi="Chuỗi huấn luyện bị cắt ở số token này. Bộ nhớ và thời gian tăng theo nó.")
    min_tokens: int = opt(
        0, min=0, max=32768, step=1, label_en="Drop rows shorter than (tokens)", label_vi="Bỏ dòng ngắn hơn (token)",
        en="Rows whose formatted text has fewer tokens are dropped. 0: keep all.",
        vi="Bỏ các dòng có văn bản đã định dạng ít token hơn số này. 0: giữ tất cả.")
    max_tokens: int = opt(
        0, min=0, max=32768, step=1, label_en="Drop rows longer than (tokens)", label_vi="Bỏ dòng dài hơn (token)",
        en="Rows whose formatted text has more tokens are dropped instead of truncated. 0: keep all.",
        vi="Bỏ (thay vì cắt) các dòng có văn bản đã định dạng nhiều token hơn số này. 0: giữ tất cả.")
    clean: bool = opt(
        True, label_en="Clean text", label_vi="Làm sạch văn bản",
        en="Normalise Unicode (NFC), strip spaces and collapse runs of blank lines.",
        vi="Chuẩn hoá Unicode (NFC), bỏ khoảng trắng thừa và gộp các dòng trống liên tiếp.")
    validation_fraction: float = opt(
        0.1, min=0.0, max=0.5, step=0.01, label_en="Validation fraction", label_vi="Tỉ lệ dữ liệu kiểm định",
        en="Share of the training rows held out to measure eval loss (seeded split, by context when rows share one).",
        vi="Phần dòng huấn luyện giữ lại để đo eval loss (chia theo seed, theo đoạn văn khi nhiều dòng chung một đoạn).")
    max_samples: int = opt(
        0, min=0, max=10_000_000, step=1, label_en="Use at most N rows", label_vi="Dùng tối đa N dòng",
        en="Cap the number of training rows (after filtering) for a quick try. 0: all.",
        vi="Giới hạn số dòng huấn luyện (sau khi lọc) để thử nhanh. 0: tất cả.")
    packing: bool = opt(
        False, label_en="Packing", label_vi="Ghép chuỗi",
        en="Lay rows end to end, up to max_length each, in one sequence without padding (trl's padding-free packing): "
           "positions restart at every row, so a row attends only to itself and its loss is unchanged. Each step "
           "then takes more rows. On a CPU the attention still runs over the whole packed sequence (masked): on the "
           "demo data, whose rows are most of max_length, it was slower (199 against 259 tokens/s); it pays with rows "
           "much shorter than max_length, or on a GPU with flash attention.",
        vi="Ghép các dòng nối tiếp nhau (mỗi chuỗi tối đa max_length) thành một chuỗi không có token đệm (ghép không "
           "đệm của trl): vị trí bắt đầu lại ở mỗi dòng, nên mỗi dòng chỉ chú ý đến chính nó và loss không đổi. Mỗi "
           "bước khi đó học nhiều dòng hơn. Trên CPU, attention vẫn chạy trên cả chuỗi đã ghép (có mặt nạ): với dữ liệu "
           "demo, có các dòng dài gần max_length, nó chậm hơn (199 so với 259 token/s); nó có lợi khi các dòng ngắn "
           "hơn nhiều so với max_length, hoặc trên GPU có flash attention.")
    completion_only_loss: bool = opt(
        True, group="basic", label_en="Loss on the answer only", label_vi="Chỉ tính loss trên câu trả lời",
        en="Compute the loss on the response only: the prompt tokens get label -100 and are not learned.",
        vi="Chỉ tính loss trên phần trả lời: token của câu lệnh có nhãn -100 và không được học.")


Optim = Literal["adamw_torch", "adamw_8bit", "paged_adamw_32bit", "paged_adamw_8bit", "adafactor", "sgd"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"]


@dataclass
class TrainSection:
    num_train_epochs: float = opt(
        1.0, group="basic", min=0.01, max=100.0, step=0.1, label_en="Epochs", label_vi="Số epoch",
        en="Passes over the training data. Many epochs on a small set make the model forget what it knew.",
        vi="Số lần duyệt hết dữ liệu huấn luyện. Nhiều epoch trên dữ liệu nhỏ làm mô hình quên kiến thức cũ.")
    max_steps: int = opt(
        -1, min=-1, max=10_000_000, step=1, label_en="Max steps", label_vi="Số bước tối đa",
        en="Stop after this many optimizer steps; -1: use the epochs.",
        vi="Dừng sau số bước tối ưu này; -1: dùng số epoch.")
    learning_rate: float = opt(
        2e-4, group="basic", min=0.0, max=1.0, label_en="Learning rate", label_vi="Tốc độ học",
        en="Peak learning rate of the adapter. LoRA usually takes 1e-4 to 3e-4; lower (5e-5) for very high ranks.",
        vi="Tốc độ học cao nhất của adapter. LoRA thường dùng 1e-4 đến 3e-4; thấp hơn (5e-5) với hạng rất cao.")
    embedding_learning_rate: float = opt(
        0.0, min=0.0, max=1.0, label_en="Embedding learning rate", label_vi="Tốc độ học của embedding",
        en="Learning rate for fully trained embed_tokens / lm_head (continued pre-training); 0: the same as the "
           "learning rate. A smaller one (lr/2 to lr/10) protects the vocabulary.",
        vi="Tốc độ học cho embed_tokens / lm_head được huấn luyện toàn bộ (tiền huấn luyện tiếp); 0: bằng tốc độ học "
           "chung. Giá trị nhỏ hơn (lr/2 đến lr/10) bảo vệ bộ từ vựng.")
    per_device_train_batch_size: int = opt(
        4, group="basic", min=1, max=1024, step=1, label_en="Batch size", label_vi="Kích thước batch",
        en="Rows per forward pass. Memory grows with it; use gradient accumulation for a larger effective batch.",
        vi="Số dòng mỗi lượt tính. Bộ nhớ tăng theo nó; dùng tích luỹ gradient để có batch hiệu dụng lớn hơn.")
    gradient_accumulation_steps: int = opt(
        1, group="basic", min=1, max=1024, step=1, label_en="Gradient accumulation", label_vi="Tích luỹ gradient",
        en="Forward passes per optimizer step: effective batch = batch size × this, at no extra memory.",
        vi="Số lượt tính cho mỗi bước tối ưu: batch hiệu dụng = batch × số này, không tốn thêm bộ nhớ.")
    warmup_ratio: float = opt(
        0.0, min=0.0, max=0.5, step=0.01, label_en="Warm-up ratio", label_vi="Tỉ lệ khởi động",
        en="Fraction of the steps over which the learning rate rises from 0. Used when warm-up steps is 0.",
        vi="Phần số bước mà tốc độ học tăng dần từ 0. Dùng khi số bước khởi động bằng 0.")
    warmup_steps: int = opt(
        0, min=0, max=1_000_000, step=1, label_en="Warm-up steps", label_vi="Số bước khởi động",
        en="Steps over which the learning rate rises from 0; takes precedence over the ratio.",
        vi="Số bước tốc độ học tăng dần từ 0; được ưu tiên hơn tỉ lệ.")
    lr_scheduler_type: Scheduler = opt(
        "linear", label_en="LR schedule", label_vi="Lịch tốc độ học",
        en="How the learning rate decays after warm-up.", vi="Cách tốc độ học giảm sau giai đoạn khởi động.")
    optim: Optim = opt(
        "adamw_torch", label_en="Optimizer", label_vi="Bộ tối ưu",
        en="adamw_torch: standard. adamw_8bit / paged_*: bitsandbytes optimizers that save optimizer memory on a GPU.",
        vi="adamw_torch: chuẩn. adamw_8bit / paged_*: bộ tối ưu của bitsandbytes, tiết kiệm bộ nhớ trạng thái trên GPU.")
    weight_decay: float = opt(
        0.0, min=0.0, max=1.0, step=0.001, label_en="Weight decay", label_vi="Suy giảm trọng số",
        en="L2-style shrinkage of the trained weights each step (0.01 is common).",
        vi="Co nhỏ các trọng số được huấn luyện sau mỗi bước (thường dùng 0,01).")
    max_grad_norm: float = opt(
        1.0, min=0.0, max=100.0, step=0.1, label_en="Gradient clipping", label_vi="Cắt gradient",
        en="Clip the gradient norm to this value; 0 disables clipping.",
        vi="Cắt chuẩn của gradient về giá trị này; 0 là không cắt.")
    seed: int = opt(
        42, min=0, max=2**31 - 1, step=1, label_en="Seed", label_vi="Seed",
        en="Random seed for the data split, shuffling and adapter initialisation: the same seed gives the same run.",
        vi="Hạt giống ngẫu nhiên cho việc chia dữ liệu, xáo trộn và khởi tạo adapter: cùng seed cho cùng kết quả.")
    gradient_checkpointing: Literal["auto", "on", "off"] = opt(
        "auto", label_en="Gradient checkpointing", label_vi="Checkpoint gradient",
        en="Recompute activations in the backward pass: much less activation memory, steps about 40-50% slower. "
           "auto: on when the memory estimate says the run would not fit comfortably (over 80% of the free "
           "memory), or that the activations would be more than half of the run's memory (then it saves most of "
           "it: the SmolLM2 defaults need 1.5 GiB instead of 4.7, at 1.5x the time per step).",
        vi="Tính lại activation khi lan truyền ngược: tốn ít bộ nhớ activation hơn nhiều, mỗi bước chậm hơn khoảng "
           "40-50%. auto: bật khi ước tính bộ nhớ cho thấy lần chạy không vừa thoải mái (quá 80% bộ nhớ còn trống), "
           "hoặc activation chiếm hơn nửa bộ nhớ của lần chạy (khi đó bật sẽ tiết kiệm phần lớn: cấu hình mặc định "
           "SmolLM2 cần 1,5 GiB thay vì 4,7, mỗi bước lâu gấp 1,5 lần).")
    logging_steps: int = opt(
        1, min=1, max=100_000, step=1, label_en="Log every N steps", label_vi="Ghi log mỗi N bước",
        en="How often the loss is recorded and plotted.", vi="Tần suất ghi và vẽ loss.")
    eval_steps: int = opt(
        0, min=0, max=100_000, step=1, label_en="Evaluate every N steps", label_vi="Đánh giá mỗi N bước",
        en="How often the validation loss is computed; 0: at the end only.",
        vi="Tần suất tính loss trên tập kiểm định; 0: chỉ ở cuối.")
    save_steps: int = opt(
        50, min=1, max=100_000, step=1, label_en="Checkpoint every N steps", label_vi="Lưu checkpoint mỗi N bước",
        en="How often a resumable checkpoint is written.", vi="Tần suất lưu checkpoint để có thể chạy tiếp.")
    save_total_limit: int = opt(
        2, min=1, max=1000, step=1, label_en="Checkpoints kept", label_vi="Số checkpoint giữ lại",
        en="Older checkpoints are deleted beyond this number.", vi="Các checkpoint cũ hơn bị xoá khi vượt quá số này.")
    train_sampling_strategy: Literal["random", "group_by_length"] = opt(
        "random", label_en="Batch rows of similar length", label_vi="Gom các dòng dài gần bằng nhau vào một batch",
        en="group_by_length: draw each batch from rows of about the same length (transformers' LengthGroupedSampler), so that less of "
           "a batch is padding: faster steps when row lengths vary. The order of the rows changes, so the losses do "
           "too; `python -m core estimate` says the padding share with and without it. random: transformers' default.",
        vi="group_by_length: lấy mỗi batch từ các dòng dài gần bằng nhau (LengthGroupedSampler của transformers), để ít token đệm "
           "hơn: mỗi bước nhanh hơn khi độ dài các dòng chênh nhau. Thứ tự các dòng thay đổi nên loss cũng khác; "
           "`python -m core estimate` cho biết tỉ lệ token đệm khi bật và khi tắt. random: mặc định của transformers.")
    skip_prompt_logits: bool = opt(
        True, label_en="Output layer on the answer only", label_vi="Chỉ tính lớp đầu ra trên câu trả lời",
        en="Compute the output layer (vocabulary logits) only where a token is learned, and with the loss a chunk of "
           "positions at a time (no logits kept for backward): the same loss, much less time and memory when the "
           "prompt is long or the vocabulary large (Gemma: 262k tokens; the SmolLM2 defaults peak 0.8 GiB lower).",
        vi="Chỉ tính lớp đầu ra (logit trên bộ từ vựng) ở những vị trí có token được học, cùng với loss theo từng "
           "khối vị trí (không giữ logit cho lượt lan truyền ngược): loss không đổi, nhưng nhanh và ít bộ nhớ hơn "
           "nhiều khi câu lệnh dài hoặc bộ từ vựng lớn (Gemma: 262 nghìn token; với cấu hình mặc định của SmolLM2, đỉnh bộ nhớ thấp hơn 0,8 GiB).")
    torch_compile: bool = opt(
        False, label_en="Compile the model (torch.compile)", label_vi="Biên dịch mô hình (torch.compile)",
        en="Compile the training step with torch.compile (inductor), transformers' own option. Measured on a 2-core "
           "CPU, the SmolLM2 defaults in float32: 7% faster steps (13.4 against 14.4 s) after about 4.5 minutes of "
           "compiling, so a run of fewer than about 250 steps is slower overall; the losses differ in the 4th digit. "
           "Off by default; worth trying on a GPU or for long runs.",
        vi="Biên dịch bước huấn luyện bằng torch.compile (inductor), tuỳ chọn có sẵn của transformers. Đo trên CPU 2 "
           "nhân, cấu hình mặc định SmolLM2 với float32: mỗi bước nhanh hơn 7% (13,4 so với 14,4 giây) sau khoảng 4,5 "
           "phút biên dịch, nên lần chạy dưới khoảng 250 bước sẽ chậm hơn tính tổng; loss khác ở chữ số thứ 4. Mặc "
           "định tắt; nên thử trên GPU hoặc khi chạy dài.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = opt(
        "auto", label_en="Mixed precision", label_vi="Độ chính xác hỗn hợp",
        en="auto: bf16 on a GPU that supports it, fp16 on older GPUs; on a CPU that computes bfloat16 natively "
           "(AVX512-BF16, AMX) bf16 with bfloat16 weights (1.2-1.7x faster than fp32, losses the same to about 2 "
           "digits), unless the base is 4-bit/8-bit or its weights are set to float32; fp32 on other CPUs. The "
           "memory estimate says which this machine gets, and why.",
        vi="auto: bf16 trên GPU hỗ trợ, fp16 trên GPU cũ; trên CPU tính bfloat16 trực tiếp (AVX512-BF16, AMX) là bf16 "
           "với trọng số bfloat16 (nhanh hơn fp32 1,2-1,7 lần, loss giống đến khoảng 2 chữ số), trừ khi mô hình gốc "
           "4-bit/8-bit hoặc trọng số đặt là float32; fp32 trên các CPU khác. Ước tính bộ nhớ cho biết máy này "
           "dùng loại nào và vì sao.")
    nproc: int = opt(
        1, min=1, max=64, step=1, label_en="Processes (data parallel)", label_vi="Số tiến trình (song song dữ liệu)",
        en="Train as N processes with accelerate launch (DDP): N GPUs, or N CPU processes (gloo) on a machine "
           "without one. Each process holds a full copy of the model and its own batch: the global batch is batch "
           "size × gradient accumulation × N, and the memory estimate is per process. 1: one process, in the app.",
        vi="Huấn luyện bằng N tiến trình qua accelerate launch (DDP): N GPU, hoặc N tiến trình CPU (gloo) khi máy "
           "không có GPU. Mỗi tiến trình giữ một bản mô hình đầy đủ và batch riêng: batch toàn cục = batch × tích luỹ "
           "gradient × N; ước lượng bộ nhớ tính cho mỗi tiến trình. 1: một tiến trình, ngay trong ứng dụng.")
    report_to: Literal["none", "tensorboard", "trackio", "wandb", "mlflow"] = opt(
        "none", label_en="Experiment tracker", label_vi="Công cụ theo dõi thí nghiệm",
        en="Also log the run to a tracker, through the trainer's own integration. tensorboard writes RUN/tensorboard; "
           "mlflow a local RUN/mlruns unless MLFLOW_TRACKING_URI is set; wandb runs offline into RUN/wandb unless "
           "you set WANDB_API_KEY or WANDB_MODE. The package is optional: the check names the pip install line. "
           "none: nothing leaves the run folder.",
        vi="Ghi thêm lần huấn luyện vào một công cụ theo dõi, qua tích hợp có sẵn của trình huấn luyện. tensorboard "
           "ghi vào RUN/tensorboard; mlflow ghi cục bộ vào RUN/mlruns nếu chưa đặt MLFLOW_TRACKING_URI; wandb chạy "
           "ngoại tuyến vào RUN/wandb nếu chưa đặt WANDB_API_KEY hay WANDB_MODE. Gói cài thêm là tùy chọn: phần "
           "kiểm tra nêu lệnh pip install. none: không gì rời khỏi thư mục lần chạy.")


@dataclass
class RunConfig:
    """A whole run: what a preset, the form and ``config.yaml`` hold."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainSection = field(default_factory=TrainSection)
    run_name: str = ""
    description: str = ""


SECTIONS = ("model", "lora", "data", "train")
TOP_LEVEL = ("run_name", "description")


# --------------------------------------------------------------------------- what a command does with a run

@dataclass
class DecodingConfig:
    """How new tokens are chosen: ``generate``, ``evaluate``, the Compare and Classroom tabs.

    Greedy (``do_sample=False``) is reproducible and is what the merge check uses.
    """

    max_new_tokens: int = opt(
        128, group="basic", min=1, max=8192, step=1, label_en="Max new tokens", label_vi="Số token mới tối đa",
        en="Generation stops after this many new tokens (or at the end-of-answer token).",
        vi="Việc sinh dừng sau số token mới này (hoặc khi gặp token kết thúc câu trả lời).")
    do_sample: bool = opt(
        False, group="basic", label_en="Sample", label_vi="Lấy mẫu",
        en="Sample the next token (varied answers) instead of taking the most likely one (greedy, reproducible).",
        vi="Lấy mẫu token kế tiếp (câu trả lời đa dạng) thay vì chọn token có xác suất cao nhất (tham lam, lặp lại được).")
    temperature: float = opt(
        0.7, min=0.05, max=2.0, step=0.05, label_en="Temperature", label_vi="Nhiệt độ",
        en="With sampling: below 1 sharper (safer), above 1 flatter (more varied).",
        vi="Khi lấy mẫu: dưới 1 thì tập trung hơn (an toàn hơn), trên 1 thì đa dạng hơn.")
    top_p: float = opt(
        0.9, min=0.05, max=1.0, step=0.05, label_en="Top-p", label_vi="Top-p",
        en="With sampling: draw only from the most likely tokens that together hold this probability.",
        vi="Khi lấy mẫu: chỉ chọn trong các token có xác suất cao nhất, cộng lại bằng giá trị này.")
    seed: int = opt(
        0, min=0, max=2**31 - 1, step=1, label_en="Seed", label_vi="Hạt giống ngẫu nhiên",
        en="With sampling: the same seed draws the same numbers for every model, so their differences come from "
           "the models.",
        vi="Khi lấy mẫu: cùng hạt giống thì mọi mô hình rút cùng dãy số ngẫu nhiên, nên khác biệt là do mô hình.")
    repetition_penalty: float = opt(
        1.0, min=1.0, max=2.0, step=0.01, label_en="Repetition penalty", label_vi="Phạt lặp từ",
        en="Above 1, a token the answer has already used becomes less likely (the prompt is not counted, so copying "
           "from the paragraph is free). 1.0: off.",
        vi="Lớn hơn 1 thì token mà câu trả lời đã dùng sẽ ít được chọn lại (không tính câu lệnh, nên chép từ đoạn "
           "văn không bị phạt). 1.0: tắt.")


@dataclass
class MergeConfig:
    """How ``merge`` folds a run's adapter into its base and how many prompts check it."""

    dtype: Literal["float32", "bfloat16", "float16"] = opt(
        "float32", group="basic", label_en="Saved precision", label_vi="Độ chính xác khi lưu",
        en="float32 is exact; bfloat16/float16 halve the size and change the logits slightly. The merge itself "
           "runs in float32.",
        vi="float32 chính xác tuyệt đối; bfloat16/float16 giảm một nửa dung lượng và làm logit thay đổi chút ít. "
           "Bản thân phép gộp luôn tính bằng float32.")
    onto: Literal["auto", "original", "dequantized", "4bit"] = opt(
        "auto", group="basic", label_en="Merge onto", label_vi="Gộp vào",
        en="auto: the dequantized 4-bit weights after QLoRA (exactly what was trained), the original ones "
           "otherwise. 4bit re-quantizes after merging and is lossy.",
        vi="auto: trọng số 4-bit đã giải lượng tử sau QLoRA (đúng thứ đã huấn luyện), trọng số gốc trong các "
           "trường hợp khác. 4bit lượng tử hoá lại sau khi gộp nên có mất mát.")
    n_prompts: int = opt(
        8, min=1, max=256, step=1, label_en="Check prompts", label_vi="Số câu lệnh kiểm tra",
        en="Prompts from the run's validation rows on which merged and base + adapter are compared.",
        vi="Số câu lệnh lấy từ tập kiểm định của lần chạy để so mô hình đã gộp với mô hình gốc + adapter.")
    max_new_tokens: int = opt(
        32, min=1, max=1024, step=1, label_en="Greedy tokens per prompt", label_vi="Số token sinh mỗi câu lệnh",
        en="Tokens generated greedily per prompt for the first-divergence check.",
        vi="Số token sinh tham lam cho mỗi câu lệnh để tìm chỗ lệch đầu tiên.")


@dataclass
class AnalysisConfig:
    """What ``analyze`` measures in an adapter's weights (ΔW spectra, intruder dimensions)."""

    top_k: int = opt(
        10, min=1, max=512, step=1, label_en="Top singular vectors", label_vi="Số vectơ suy biến đầu",
        en="How many top singular vectors of the fine-tuned weight are checked for intruders (the paper: 10).",
        vi="Số vectơ suy biến lớn nhất của trọng số đã tinh chỉnh được kiểm tra xem có chiều lạ không (bài báo: 10).")
    epsilon: float = opt(
        0.5, min=0.0, max=1.0, step=0.05, label_en="Intruder threshold", label_vi="Ngưỡng chiều lạ",
        en="A new singular vector whose best cosine with every base singular vector is below this is an intruder "
           "(the paper: 0.5).",
        vi="Vectơ suy biến mới có cosin lớn nhất với mọi vectơ suy biến của mô hình gốc nhỏ hơn ngưỡng này là "
           "chiều lạ (bài báo: 0,5).")
    method: Literal["lowrank", "exact"] = opt(
        "lowrank", label_en="SVD method", label_vi="Cách tính SVD",
        en="lowrank: randomized SVD of the top directions (fast); exact: the full SVD of every weight (slow, exact).",
        vi="lowrank: SVD ngẫu nhiên của các hướng chính (nhanh); exact: SVD đầy đủ của từng trọng số (chậm, chính xác).")


