/** Types of `no-number-truthiness.js`, an ESLint rule written in JavaScript so that the ESLint configuration can load it as is. */
import type { Rule } from "eslint"

declare const rule: Rule.RuleModule
export default rule
