/**
 * ESLint rule `no-number-truthiness`: no number where the device tests truthiness.
 *
 * The DeviceScript runtime we ship on (2.16.4, simulator and ESP32 alike)
 * converts a non-integer double to boolean inverted: `devs_value_to_bool` in
 * runtime `value.c` ends with `return v._f == 0.0 ? true : false`, so
 * `!!1.65` is false and `-1.5 || 0` is 0. Integers and literals the compiler
 * folds behave, but the type system cannot tell an integer from a fraction,
 * so every number-typed value in a boolean context is refused; compare
 * explicitly (`x !== 0`, `x === undefined`, `x > 0`, `x ?? fallback`).
 *
 * Boolean contexts: the tests of if/while/do/for/?:, the operand of `!`, the
 * left operand of `&&` and `||` (and the right one too when the whole is
 * tested), and the result of a callback passed to filter/find/findIndex/some/every.
 * Type-aware: needs `parserOptions.project`.
 */
import ts from "typescript"

/** Array methods whose callback's result is tested. */
const PREDICATES = new Set(["filter", "find", "findIndex", "some", "every"])

/** Whether a value of `type` can be a number (a union with any number member counts). */
function isNumberLike(type) {
    if (type.isUnion()) return type.types.some(isNumberLike)
    return (type.flags & (ts.TypeFlags.NumberLike | ts.TypeFlags.BigIntLike)) !== 0
}

/** @type {import("eslint").Rule.RuleModule} */
export default {
    meta: {
        type: "problem",
        docs: { description: "refuse number-typed values in boolean contexts (DeviceScript devs_value_to_bool bug)" },
        messages: { number: "number in a boolean context: on the device a fractional value is falsy; compare explicitly" },
        schema: [],
    },
    create(context) {
        const services = context.sourceCode.parserServices
        if (!services?.program) throw new Error("no-number-truthiness needs type information (parserOptions.project)")
        const checker = services.program.getTypeChecker()
        const reported = new Set()
        /** `node` is tested for truthiness. */
        const check = node => {
            if (!node) return
            // a tested `a || b` tests both of its operands
            if (node.type === "LogicalExpression" && node.operator !== "??") {
                check(node.left)
                check(node.right)
                return
            }
            if (reported.has(node)) return
            const type = checker.getTypeAtLocation(services.esTreeNodeToTSNodeMap.get(node))
            if (!isNumberLike(type)) return
            reported.add(node)
            context.report({ node, messageId: "number" })
        }
        /** A predicate callback: its expression body or, for a block body, its return type is tested. */
        const checkCallback = fn => {
            if (!fn || (fn.type !== "ArrowFunctionExpression" && fn.type !== "FunctionExpression")) return
            if (fn.body.type !== "BlockStatement") return check(fn.body)
            const signature = checker.getSignatureFromDeclaration(services.esTreeNodeToTSNodeMap.get(fn))
            if (signature && isNumberLike(checker.getReturnTypeOfSignature(signature))) context.report({ node: fn, messageId: "number" })
        }
        return {
            IfStatement: n => check(n.test),
            WhileStatement: n => check(n.test),
            DoWhileStatement: n => check(n.test),
            ForStatement: n => check(n.test),
            ConditionalExpression: n => check(n.test),
            UnaryExpression: n => n.operator === "!" && check(n.argument),
            // `a || b` and `a && b` test `a` wherever they stand
            LogicalExpression: n => n.operator !== "??" && check(n.left),
            CallExpression: n => {
                const callee = n.callee
                if (callee.type === "MemberExpression" && callee.property.type === "Identifier" && PREDICATES.has(callee.property.name))
                    checkCallback(n.arguments[0])
            },
        }
    },
}
