/// The Jinja chat template a model directory's `tokenizer_config.json` carries, so that
/// `transformers`' `apply_chat_template` renders OpenAI-style messages as the trainer's
/// transcripts.
extension CallFormat {
    /// A template that writes messages as `DemonstrationFile` renders a demonstration, and as
    /// the trainer prompts the policy:
    ///
    ///     <|user|>question<|assistant|>thinking<call>calc(12*7)</call><obs>84</obs><answer>84</answer><|end|>
    ///
    /// - the one `user` message is `<|user|>` and its content; `<|assistant|>` follows when
    ///   more messages follow or `add_generation_prompt` asks for the policy's turn, so the
    ///   prompt is what `ProtocolCodec.promptTokens` gives the policy;
    /// - an `assistant` message with `tool_calls` is its content (the thinking), then each call
    ///   between `<call>` and `</call>`, in this format unless the template argument
    ///   `call_format` (`"compact"` or `"json"`) names the other;
    /// - a `tool` message is `<obs>` result `</obs>`;
    /// - an `assistant` message without calls is the answer, trimmed: `<answer>…</answer><|end|>`.
    ///
    /// Content is a string, null or a list of `{"type": "text", "text": …}` parts. A call's
    /// `arguments` is an object (a JSON string is written as it is in the json format and
    /// refused in the compact one): the json format writes `{"arguments":…,"name":…}` with
    /// sorted keys and no spaces, as `render(tool:arguments:)` does; the compact format writes
    /// the values in the order the object lists them, which must be the tool's argument order.
    /// A `system` message, or any other role, is refused: the protocol has none.
    ///
    /// What the template cannot do, the environment does for the policy: it caps a tool result
    /// at `env.limits.max_observation_characters` and removes tag spellings from questions and
    /// results, whose bytes the policy reads as plain text. Tokenizing the rendered text with
    /// `transformers` turns every tag spelling into its special token, so the two agree on
    /// results within the cap and questions and results that spell no tag.
    public var chatTemplate: String {
        let lines = [
            "{%- macro text(content) -%}",
            "{%- if content is none -%}{%- elif content is string -%}{{- content -}}",
            "{%- else -%}{%- for part in content -%}{{- part['text'] -}}{%- endfor -%}{%- endif -%}",
            "{%- endmacro -%}",
            "{%- set call_format = call_format if call_format is defined else '\(rawValue)' -%}",
            "{%- for message in messages -%}",
            "{%- if message['role'] == 'user' -%}",
            "{{- '\(ProtocolTag.user.rawValue)' + text(message['content']) -}}",
            "{%- if not loop.last or add_generation_prompt -%}{{- '\(ProtocolTag.assistant.rawValue)' -}}{%- endif -%}",
            "{%- elif message['role'] == 'assistant' and message['tool_calls'] -%}",
            "{{- text(message['content']) -}}",
            "{%- for call in message['tool_calls'] -%}",
            "{%- set function = call['function'] if call['function'] is defined else call -%}",
            "{%- set arguments = function['arguments'] if function['arguments'] is defined and function['arguments'] is not none else {} -%}",
            "{%- if call_format == 'json' -%}",
            "{%- set arguments = arguments if arguments is string else arguments | tojson(separators=(',', ':'), sort_keys=true) -%}",
            "{{- '\(ProtocolTag.callOpen.rawValue){\"arguments\":' + arguments + ',\"name\":' + function['name'] | tojson + '}\(ProtocolTag.callClose.rawValue)' -}}",
            "{%- elif call_format == 'compact' -%}",
            "{%- if arguments is string -%}{{- raise_exception('compact tool calls take arguments as an object, not a JSON string') -}}{%- endif -%}",
            "{{- '\(ProtocolTag.callOpen.rawValue)' + function['name'] + '(' -}}",
            "{%- for value in arguments.values() -%}{{- value if value is string else value | tojson -}}{{- ', ' if not loop.last else '' -}}{%- endfor -%}",
            "{{- ')\(ProtocolTag.callClose.rawValue)' -}}",
            "{%- else -%}",
            "{{- raise_exception('call_format is compact or json, not ' + call_format | string) -}}",
            "{%- endif -%}",
            "{%- endfor -%}",
            "{%- elif message['role'] == 'assistant' -%}",
            "{{- '\(ProtocolTag.answerOpen.rawValue)' + text(message['content']) | trim + '\(ProtocolTag.answerClose.rawValue)\(ProtocolTag.end.rawValue)' -}}",
            "{%- elif message['role'] == 'tool' -%}",
            "{{- '\(ProtocolTag.observationOpen.rawValue)' + text(message['content']) + '\(ProtocolTag.observationClose.rawValue)' -}}",
            "{%- else -%}",
            "{{- raise_exception('the protocol has user, assistant and tool messages, not ' + message['role'] | string) -}}",
            "{%- endif -%}",
            "{%- endfor -%}",
        ]
        return lines.joined(separator: "\n")
    }
}
